"""ViewCache: a view is reused only for a body equal to the one it was parsed from."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from exfilguard import engine
from exfilguard.config import Config
from exfilguard.model import BadResource
from exfilguard.picture import build
from exfilguard.viewcache import ViewCache
from tests import factory as f

SAMPLES = Path(__file__).parent.parent / "samples"


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
    bad["properties"]["securityRules"] = "not a list"
    for _ in range(2):
        with pytest.raises(BadResource, match="securityRules"):
            views.parse(bad)
    assert len(views) == 0 and views.hits == 0
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
