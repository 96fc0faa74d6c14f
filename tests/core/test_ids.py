"""ARM ID arithmetic: a parsed ID's text and parent, its equality, its type."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from exfilguard.core import ids

RULE = ("/subscriptions/6f1e3c2a-8d4b-4f7e-9a51-2c7d0b9e4a11/resourceGroups/rg/providers/"
        "Microsoft.Network/networkSecurityGroups/n/securityRules/r")


def test_text_and_parent_of_a_parsed_id():
    rid = ids.parse(RULE)
    fresh = ids.ResourceId(rid.subscription, rid.resource_group, rid.namespace, rid.types, rid.names)
    assert str(rid) == RULE == str(fresh)
    assert rid.parent == fresh.parent and str(rid.parent) == RULE.rsplit("/", 2)[0]
    assert rid.parent.parent is None
    assert rid == fresh and hash(rid) == hash(fresh)
    with pytest.raises(FrozenInstanceError):
        rid.subscription = "x"  # type: ignore[misc]


def test_type_of_is_the_parsed_type_or_none():
    assert ids.type_of(RULE) == "Microsoft.Network/networkSecurityGroups/securityRules"
    assert ids.type_of(RULE.lower()) == "microsoft.network/networksecuritygroups/securityrules"
    assert ids.type_of("not an id") is None
