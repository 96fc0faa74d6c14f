"""ARM ID arithmetic: the text and parent a parsed ID keeps once asked for are exactly what
they would be computed afresh, and never part of equality."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from exfilguard.core import ids

RULE = ("/subscriptions/6f1e3c2a-8d4b-4f7e-9a51-2c7d0b9e4a11/resourceGroups/rg/providers/"
        "Microsoft.Network/networkSecurityGroups/n/securityRules/r")


def test_text_and_parent_are_kept_and_equal_a_fresh_computation():
    rid = ids.parse(RULE)
    fresh = ids.ResourceId(rid.subscription, rid.resource_group, rid.namespace, rid.types, rid.names)
    assert str(rid) == RULE == str(fresh) == rid._compose()
    text = str(rid)
    assert str(rid) is text  # kept
    assert rid.parent is rid.parent and rid.parent == fresh.parent and str(rid.parent) == RULE.rsplit("/", 2)[0]
    assert rid.parent.parent is None
    assert rid == fresh and hash(rid) == hash(fresh)  # the kept values are not compared or hashed
    assert "_text" not in repr(rid)
    with pytest.raises(FrozenInstanceError):
        rid.subscription = "x"  # type: ignore[misc]


def test_type_of_is_the_parsed_type_or_none():
    assert ids.type_of(RULE) == "Microsoft.Network/networkSecurityGroups/securityRules"
    assert ids.type_of(RULE.lower()) == "microsoft.network/networksecuritygroups/securityrules"
    assert ids.type_of("not an id") is None
