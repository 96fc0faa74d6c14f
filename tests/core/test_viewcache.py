"""ViewCache: a view is reused only for a body equal to the one it was parsed from."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from exfilguard.core import engine
from exfilguard.core.config import Config
from exfilguard.core.model import BadResource
from exfilguard.core.picture import build
from exfilguard.core.viewcache import ViewCache
from tests import factory as f

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_an_equal_body_gets_the_same_view_and_a_changed_one_a_fresh_view():
    views = ViewCache()
    body = f.nsg("rg", "n", "westeurope", [f.rule("r1", 100)])
    body["etag"] = 'W/"1"'
    first = views.parse(body)
    again = views.parse(copy.deepcopy(body))  # freshly decoded JSON: equal, not the same object
    assert again is first and (views.hits, views.misses) == (1, 1)
    changed = copy.deepcopy(body)
    changed["etag"] = 'W/"2"'  # ARM's write: the etag at least is new
    fresh = views.parse(changed)
    assert fresh is not first and fresh.etag == 'W/"2"' and fresh.raw is changed
    changed_rule = copy.deepcopy(changed)
    changed_rule["properties"]["securityRules"][0]["properties"]["access"] = "Deny"  # same etag, other content
    assert views.parse(changed_rule).rules[0].access == "deny"
    assert views.hits == 1 and len(views) == 1


def test_bad_bodies_are_not_kept_and_still_raise():
    views = ViewCache()
    bad = f.nsg("rg", "n", "westeurope", [])
    bad["properties"] = "not an object"
    for _ in range(2):
        with pytest.raises(BadResource, match="properties"):
            views.parse(bad)
    assert len(views) == 0 and views.hits == 0
    # A rule list that is no list is one unreadable element: the NSG is kept and fails closed.
    odd = f.nsg("rg", "n", "westeurope", [])
    odd["properties"]["securityRules"] = "not a list"
    assert [u.name for u in views.parse(odd).unreadable] == ["securityRules"]
    assert views.parse({"id": "/subscriptions/s/resourceGroups/g/providers/Other.Type/x/y", "type": "Other.Type/x"}) \
        is None


def test_the_cache_is_bounded_and_drops_the_oldest():
    views = ViewCache(max_entries=3)
    bodies = [f.nsg("rg", f"n{i}", "westeurope", []) for i in range(5)]
    for b in bodies:
        views.parse(b)
    assert len(views) == 3
    views.parse(copy.deepcopy(bodies[0]))  # dropped: parsed again
    assert views.hits == 0
    views.parse(copy.deepcopy(bodies[4]))  # kept
    assert views.hits == 1


def test_pictures_built_with_views_evaluate_exactly_as_without():
    """Repeated builds over freshly decoded bodies, then over changed ones: the same findings."""
    cfg = Config(mode="remediate")
    views = ViewCache()
    text = (SAMPLES / "drifted-subscription.json").read_text()
    want = engine.evaluate(build(json.loads(text)), cfg).findings
    for _ in range(2):
        assert engine.evaluate(build(json.loads(text), views=views), cfg).findings == want
    assert views.hits > 0
    drifted = json.loads(text)
    for b in drifted:  # every workspace opens up: fresh views for the changed ones only
        if b["type"].lower() == "microsoft.machinelearningservices/workspaces":
            b["properties"]["publicNetworkAccess"] = "Enabled"
    got = engine.evaluate(build(drifted, views=views), cfg).findings
    assert got == engine.evaluate(build(json.loads(json.dumps(drifted))), cfg).findings and got != want


def _after_write(body: dict, n: int, rule: str | None = None, **changes) -> dict:
    """``body`` as ARM returns it after write ``n``: a new etag on the NSG and on every rule in
    it, and ``changes`` to the properties of ``rule``."""
    out = copy.deepcopy(body)
    out["etag"] = f'W/"{n}"'
    for r in out["properties"]["securityRules"]:
        r["etag"] = f'W/"{n}"'
        if r["name"] == rule:
            r["properties"].update(changes)
    return out


def test_an_nsg_read_again_reuses_the_rules_whose_json_did_not_change():
    from exfilguard.core.types import parse_resource

    views = ViewCache()
    body = f.nsg("rg", "n", "westeurope", [f.rule("r1", 100), f.rule("r2", 110, dest="Storage"),
                                           f.rule("r3", 120, direction="Inbound")])
    first = views.parse(body)
    second_body = _after_write(body, 2, "r2", destinationAddressPrefix="Internet")
    second = views.parse(second_body)
    assert views.hits == 0  # the NSG changed: parsed again
    # The rules ARM only stamped with the new etag are the views read before; the written one is new.
    assert second.rules[0] is first.rules[0] and second.rules[2] is first.rules[2]
    assert second.rules[1] is not first.rules[1] and second.rules[1].dest_prefixes == ("Internet",)
    # The NSG view is the one a fresh parse makes (rule etags are not part of a rule's equality).
    assert second == parse_resource(copy.deepcopy(second_body)) and second.etag == 'W/"2"'
    assert second.raw is second_body


def test_rules_are_read_afresh_when_renamed_moved_to_another_nsg_or_misfit():
    views = ViewCache()
    body = f.nsg("rg", "n", "westeurope", [f.rule("r1", 100), f.rule("r2", 110)])
    first = views.parse(body)
    renamed = _after_write(body, 2)
    renamed["properties"]["securityRules"][0]["name"] = "r1-new"
    again = views.parse(renamed)
    assert again.rules[0] is not first.rules[0] and again.rules[0].name == "r1-new"
    assert again.rules[1] is first.rules[1]
    added = _after_write(renamed, 3)
    added["properties"]["securityRules"].append(f.rule("r9", 300, nsg=body["id"]))
    grown = views.parse(added)
    assert [r.name for r in grown.rules] == ["r1-new", "r2", "r9"] and grown.rules[1] is first.rules[1]
    # An etag of the wrong JSON type must fail as a fresh parse fails (the rule kept unreadable
    # on its NSG), not be waved through.
    from exfilguard.core.types import parse_resource

    bad = _after_write(added, 4)
    bad["properties"]["securityRules"][1]["etag"] = 7
    misfit = ViewCache().parse(bad)  # (a cache of its own: the chain of reads below goes on from grown)
    assert [u.name for u in misfit.unreadable] == ["r2"] and "etag" in misfit.unreadable[0].reason
    assert misfit == parse_resource(copy.deepcopy(bad)) and [r.name for r in misfit.rules] == ["r1-new", "r9"]
    # No etag at all differs from JSON that had one: read afresh. A null etag is set aside like
    # a string one: the view read from the same JSON without it is lent.
    gone = _after_write(added, 5)
    del gone["properties"]["securityRules"][2]["etag"]  # r9 was read with one
    without = views.parse(gone)
    assert without.rules[2] is not grown.rules[2] and without == parse_resource(copy.deepcopy(gone))
    assert without.rules[1] is first.rules[1]  # r2 was first read without one: still the same JSON
    null = _after_write(gone, 6)
    null["properties"]["securityRules"][2]["etag"] = None
    assert views.parse(null).rules[2] is without.rules[2]
    # A view of another NSG lends nothing, even with equal rule JSON.
    other = copy.deepcopy(body)
    other["id"] = f.nsg_id("rg", "other")
    other_view = views.parse(other)
    assert all(a is not b for a, b in zip(other_view.rules, first.rules, strict=True))


def test_default_rules_with_a_priority_that_is_not_an_integer_fail_as_the_checked_reading_does():
    from tests.armemu import ArmEmulator

    body = ArmEmulator([f.nsg("rg", "n", "westeurope", [f.rule("r1", 100)])]).get_body(f.nsg_id("rg", "n"))
    assert len(ViewCache().parse(copy.deepcopy(body)).default_rules) == 6
    body["properties"]["defaultSecurityRules"][3]["properties"]["priority"] = 65000.0
    parsed = ViewCache().parse(body)  # the rule is kept unreadable (fail closed), the others read
    assert [u.name for u in parsed.unreadable] == ["AllowVnetOutBound"] and "priority" in parsed.unreadable[0].reason
    assert len(parsed.default_rules) == 5
