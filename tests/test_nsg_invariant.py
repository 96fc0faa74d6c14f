"""The invariant every NSG write keeps (baseline "Required outbound flows"): after ExfilGuard's
write, each required flow of each guarded subnet is Allowed and no generic internet destination
is; no existing rule is deleted, and no rule's properties change except ``access``,
``description`` and the destination lists.

Proven two ways: hypothesis generates NSGs (custom rules of random priorities, directions,
protocols, ports, sources and destinations, names that collide with ExfilGuard's own, with and
without default rules, one or two guarded subnets in one or two regions, every setting that
changes the required flows), and every NSG the repository holds (the drifted sample, the REST
API examples and recorded cassettes under tests/data) is attached to a guarded subnet. Each
time the engine plans the remediate-mode change, the existing apply-edits code applies it to
the NSG's body, and the engine decides every required flow of the result.

When the plan is manual (no free priority left above a blocking Deny, or a rule that does not
read) nothing outbound is written, so the weaker property is checked: the write (if any) opens
no internet path and closes no required flow that was open.
"""

from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exfilguard import engine, ids
from exfilguard import nsg as decisions
from exfilguard.config import Config
from exfilguard.fixes import apply_edits
from exfilguard.model import _AZURE_DEFAULTS
from exfilguard.picture import build
from exfilguard.rules import nsg as nsg_rules
from tests import factory as f
from tests.support import DATA, SAMPLES

RG = "rg-prop"
OUTBOUND_FIXES = ("EXF-NSG-01", "EXF-NSG-02", "EXF-NSG-03")
CHANGEABLE = {"access", "description", "destinationAddressPrefix", "destinationAddressPrefixes"}


def guarded(nsg: dict, regions: tuple[str, ...] = ("westeurope",), hbi: bool = False) -> list[dict]:
    """``nsg`` attached to one guarded subnet per region (each with a compute on it)."""
    st_id = f.storage_id(RG, "stprop01")
    ws = f.workspace(RG, "mlw-prop", regions[0], st_id)
    ws["properties"]["hbiWorkspace"] = hbi
    out = [nsg, ws]
    for i, region in enumerate(regions):
        vid = f.vnet_id(RG, f"vnet-{i}")
        sn = f.subnet(vid, "snet", f"10.{20 + i}.1.0/24", nsg["id"], [], [f.storage_endpoint(region)])
        out += [f.vnet(RG, f"vnet-{i}", region, f"10.{20 + i}.0.0/16", [sn]),
                f.compute(ws["id"], f"ci-{i}", region, subnet=sn["id"])]
    return out


def _state(bodies: list[dict], nsg_id: str, cfg: Config) -> dict[str, object]:
    """What the engine decides of the NSG for every guarded subnet: required flow -> access,
    and whether a generic internet destination is allowed."""
    pic = build(copy.deepcopy(bodies))
    key = ids.key(nsg_id)
    nsg = pic.nsgs[key]
    out: dict[str, object] = {}
    outbound = nsg.ordered("outbound")
    for g in pic.subnets_of_nsg(key):
        prefixes = g.subnet.address_prefixes if g.subnet else ()
        hbi = any((w := pic.workspace_of(c)) is not None and w.hbi_workspace for c in g.computes)
        out[f"{g.key} internet"] = decisions.internet_leak(outbound, prefixes)[0]
        for region in g.regions:
            for flow in nsg_rules._required_flows(region, cfg.curated_environments, cfg.secured_monitor,
                                                  cfg.storage_smb, hbi):
                out[f"{g.key} {flow.label()}"] = decisions.decide(outbound, flow, prefixes)[0]
    return out


def check_fix(bodies: list[dict], nsg_id: str, cfg: Config) -> str:
    """Plan, apply and re-evaluate one guarded NSG; returns "fixed", "clean" or "manual"."""
    before_state = _state(bodies, nsg_id, cfg)
    ev = engine.evaluate(build(copy.deepcopy(bodies)), cfg, only=[nsg_id])
    mine = [x for x in ev.findings if ids.key(x.resource_id) == ids.key(nsg_id)]
    changes = [c for c in engine.plan(ev.findings, cfg, mode="remediate") if ids.key(c.target_id) == ids.key(nsg_id)]
    i = next(n for n, b in enumerate(bodies) if ids.key(b.get("id", "")) == ids.key(nsg_id))
    after = list(bodies)
    if changes:
        [change] = changes
        after[i] = apply_edits(bodies[i], change.edits)  # the product's own apply-edits code
    _rules_kept(bodies[i], after[i])
    state = _state(after, nsg_id, cfg)
    outbound = [x for x in mine if x.rule_id in OUTBOUND_FIXES]
    re_ev = engine.evaluate(build(copy.deepcopy(after)), cfg, only=[nsg_id])
    still = {x.rule_id for x in re_ev.findings}
    assert not still & {x.rule_id for x in mine if x.fix_mode == "auto"}, (mine, re_ev.findings)
    if all(x.fix_mode == "auto" for x in outbound):
        # The invariant: every required flow Allowed, no generic internet destination Allowed.
        assert {k: v for k, v in state.items() if v not in ("allow", False)} == {}, (mine, state)
        assert not still & set(OUTBOUND_FIXES)
        return "fixed" if outbound else "clean"
    # Part of the outbound fix is manual (no free priority; NSG-01 alone when no priority at or
    # below the configured deny priority is free): what is written never closes a required flow
    # that was open nor opens the internet, and a written NSG-03 fix opens every required flow.
    for k, v in before_state.items():
        if v in ("allow", False):
            assert state[k] == v, (k, mine)
    if any(x.rule_id == "EXF-NSG-03" and x.fix_mode == "auto" for x in mine):
        assert {k: v for k, v in state.items() if v == "deny"} == {}
    if any(x.fix_mode == "manual" and x.rule_id != "EXF-NSG-01" for x in outbound):
        # No room for a required flow's Allow: nothing outbound is written at all.
        assert all(x.fix_mode == "manual" for x in outbound) and state == before_state
    return "manual"


def _rules_kept(before: dict, after: dict) -> None:
    """No existing rule deleted; no property of one changed except access, description and the
    destination lists; every added rule is new (no name taken)."""
    old = {r["name"].lower(): r for r in (before.get("properties") or {}).get("securityRules") or []
           if isinstance(r, dict) and isinstance(r.get("name"), str)}
    new = {}
    for r in (after.get("properties") or {}).get("securityRules") or []:
        if isinstance(r, dict) and isinstance(r.get("name"), str):
            new.setdefault(r["name"].lower(), r)
    assert set(old) <= set(new), set(old) - set(new)
    for name, r in old.items():
        a, b = r.get("properties") or {}, new[name].get("properties") or {}
        changed = {k for k in {*a, *b} if a.get(k) != b.get(k)}
        assert changed <= CHANGEABLE, (name, changed)
        assert {k: v for k, v in r.items() if k != "properties"} == {
            k: v for k, v in new[name].items() if k != "properties"}
    for name in set(new) - set(old):
        assert new[name]["name"].startswith("exfilguard-"), name


# --- generated NSGs ------------------------------------------------------------------------------
DESTS = ["*", "Internet", "0.0.0.0/0", "Storage", "Storage.westeurope", "Storage.eastus", "AzureMachineLearning",
         "AzureActiveDirectory", "AzureResourceManager", "AzureMonitor", "BatchNodeManagement.westeurope",
         "MicrosoftContainerRegistry", "MicrosoftContainerRegistry.westeurope", "AzureFrontDoor.FirstParty",
         "AzureFrontDoor.Frontend", "AzureKeyVault.westeurope", "VirtualNetwork", "10.0.0.0/8", "10.20.1.0/24",
         "52.1.0.0/16", "8.8.8.8", "AzureCloud"]
PORTS = ["*", "443", "80", "445", "8787", "18881", "5831", "80-443", "0-65535", "1-1000", "22",
         ["80", "443"], ["443", "8787", "18881"], ["445", "5831"]]
PROTOCOLS = ["*", "Tcp", "Udp", "Icmp", "TCP"]
SOURCES = ["*", "VirtualNetwork", "10.0.0.0/8", "10.20.0.0/16", "192.168.0.0/16", "AzureLoadBalancer", "Internet",
           "52.1.2.3", ["10.20.1.0/24", "10.21.1.0/24"]]
NAMES = ["r", nsg_rules.DENY_RULE_NAME, "exfilguard-allow-azureactivedirectory-tcp-80_443",
         "exfilguard-allow-storage-westeurope-tcp-443", "EXFILGUARD-DENY-INTERNET-OUTBOUND-2"]


def _one_of(values):
    return st.sampled_from(values)


@st.composite
def rule_bodies(draw, priorities):
    i = draw(st.integers(0, 10_000))
    name = draw(_one_of(NAMES))
    body = f.rule(f"{name}-{i}" if name == "r" else name, draw(priorities),
                  direction=draw(st.sampled_from(["Outbound", "Outbound", "Inbound"])),
                  access=draw(st.sampled_from(["Allow", "Deny"])), protocol=draw(_one_of(PROTOCOLS)),
                  dest=draw(st.one_of(_one_of(DESTS), st.lists(_one_of(DESTS), min_size=1, max_size=3, unique=True))),
                  ports=draw(_one_of(PORTS)), source=draw(_one_of(SOURCES)),
                  description=draw(st.sampled_from(["", "kept as is"])))
    return body


@st.composite
def scenarios(draw):
    # Priorities: anywhere in 100-4096, or crowded at the top so that room runs out.
    crowded = draw(st.booleans())
    prio = st.integers(100, 130) if crowded else st.integers(100, 4096)
    rules = draw(st.lists(rule_bodies(prio), max_size=12))
    seen, unique = set(), []
    for r in rules:  # ARM refuses two rules of one name, or of one priority and direction
        p = r["properties"]
        key = (p["priority"], p["direction"])
        if r["name"].lower() in seen or key in seen:
            continue
        seen |= {r["name"].lower(), key}
        unique.append(r)
    nsg = f.nsg(RG, "nsg-prop", "westeurope", unique)
    if draw(st.booleans()):  # the default rules as ARM returns them (else assumed)
        nsg["properties"]["defaultSecurityRules"] = [
            {"name": n, "id": f"{nsg['id']}/defaultSecurityRules/{n}", "properties": {
                "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefix": src,
                "destinationAddressPrefix": dst, "access": access, "priority": prio, "direction": direction}}
            for n, _, direction, access, prio, src, dst in _AZURE_DEFAULTS]
    regions = draw(st.sampled_from([("westeurope",), ("westeurope", "westeurope"), ("westeurope", "eastus")]))
    cfg = Config(mode="remediate", curated_environments=draw(st.booleans()), secured_monitor=draw(st.booleans()),
                 storage_smb=draw(st.booleans()), deny_priority=draw(st.sampled_from([4096, 4000, 120, 100])))
    return guarded(nsg, regions, hbi=draw(st.booleans())), nsg["id"], cfg


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_nsg_fix_keeps_the_invariant_on_generated_nsgs(scenario):
    bodies, nsg_id, cfg = scenario
    check_fix(bodies, nsg_id, cfg)


# --- every NSG the repository holds --------------------------------------------------------------
def _fixture_nsgs() -> list[tuple[str, dict]]:
    out = []
    for path in sorted((DATA / "azure" / "network").glob("NetworkSecurityGroup*.json")):
        for resp in json.loads(path.read_text())["responses"].values():
            body = resp.get("body") if isinstance(resp, dict) else None
            if isinstance(body, dict) and "networkSecurityGroups/" in body.get("id", "") and \
                    "/securityRules/" not in body["id"]:
                out.append((path.name, body))
    for path in sorted((DATA / "c7n-cassettes").glob("*.json")):
        for it in json.loads(path.read_text())["interactions"]:
            data = ((it.get("response") or {}).get("body") or {}).get("data")
            items = data.get("value") if isinstance(data, dict) and isinstance(data.get("value"), list) else [data]
            for body in items:
                if isinstance(body, dict) and str(body.get("type", "")).lower() == \
                        "microsoft.network/networksecuritygroups":
                    out.append((path.name, body))
    return out


def test_nsg_fix_keeps_the_invariant_on_every_fixture_and_the_drifted_sample():
    outcomes: dict[str, int] = {}
    nsgs = _fixture_nsgs()
    assert len(nsgs) >= 60  # 5 REST API examples, 58 cassette bodies
    for cfg in (Config(mode="remediate"), Config(mode="remediate", secured_monitor=True, storage_smb=True)):
        for source, body in nsgs:
            nsg = copy.deepcopy(body)
            region = (nsg.get("location") or "westeurope").replace(" ", "").lower()
            try:
                outcome = check_fix(guarded(nsg, (region,), hbi=True), nsg["id"], cfg)
            except AssertionError as exc:
                raise AssertionError(f"{source}: {nsg['id']}") from exc
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        drifted = json.loads((SAMPLES / "drifted-subscription.json").read_text())
        pic = build(copy.deepcopy(drifted))
        for key in pic.guarded_nsg_keys():
            outcome = check_fix(drifted, pic.nsgs[key].id, cfg)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            assert outcome == "fixed"  # both NSGs of the sample drifted, and both are fixed whole
    assert outcomes.get("fixed", 0) >= 100, outcomes
