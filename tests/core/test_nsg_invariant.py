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
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exfilguard.core import engine, ids
from exfilguard.core import nsg_decisions as decisions
from exfilguard.core.config import Config
from exfilguard.core.egress import nsg_judged_as_written
from exfilguard.core.fixes import apply_edits
from exfilguard.core.model import _AZURE_DEFAULTS
from exfilguard.core.picture import Picture, build
from exfilguard.core.rules import nsg as nsg_rules
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


def _state(pic: Picture, nsg_id: str, cfg: Config) -> dict[str, object]:
    """What the engine decides of the NSG for every guarded subnet: required flow -> access,
    and whether a generic internet destination is allowed (only where the NSG is the subnet's
    egress control: a firewall, an appliance or a None route handles the internet otherwise)."""
    key = ids.key(nsg_id)
    nsg = pic.nsgs[key]
    out: dict[str, object] = {}
    outbound = nsg.ordered("outbound")
    subnets = list(pic.subnets_of_nsg(key))
    as_written = nsg_judged_as_written(pic, subnets)
    for g in subnets:
        prefixes = g.subnet.address_prefixes if g.subnet else ()
        hbi = any((w := pic.workspace_of(c)) is not None and w.hbi_workspace for c in g.computes)
        if as_written:
            out[f"{g.key} internet"] = decisions.internet_leak(outbound, prefixes)[0]
        for region in g.regions:
            for flow in nsg_rules._required_flows(region, cfg.curated_environments, cfg.secured_monitor,
                                                  cfg.storage_smb, hbi):
                out[f"{g.key} {flow.label()}"] = decisions.decide(outbound, flow, prefixes)[0]
    return out


def check_fix(bodies: list[dict], nsg_id: str, cfg: Config) -> str:
    """Plan, apply and re-evaluate one guarded NSG; returns "fixed", "clean" or "manual"."""
    pic = build(bodies)  # the product never changes the bodies it reads
    before_state = _state(pic, nsg_id, cfg)
    ev = engine.evaluate(pic, cfg, only=[nsg_id])
    mine = [x for x in ev.findings if ids.key(x.resource_id) == ids.key(nsg_id)]
    changes = [c for c in engine.plan(ev.findings, cfg, mode="remediate") if ids.key(c.target_id) == ids.key(nsg_id)]
    i = next(n for n, b in enumerate(bodies) if ids.key(b.get("id", "")) == ids.key(nsg_id))
    after = list(bodies)
    if changes:
        [change] = changes
        after[i] = apply_edits(bodies[i], change.edits)  # the product's own apply-edits code
    _rules_kept(bodies[i], after[i])
    pic = build(after)
    state = _state(pic, nsg_id, cfg)
    outbound = [x for x in mine if x.rule_id in OUTBOUND_FIXES]
    re_ev = engine.evaluate(pic, cfg, only=[nsg_id])
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


def _rule_from(seed: int, crowded: bool) -> dict:
    """One custom rule, every field picked from the pools above by ``seed``. Hypothesis draws
    one integer per rule (and shrinks it) rather than a dozen values: 2,000 NSGs stay quick."""
    rnd = random.Random(seed)
    name = rnd.choice(NAMES)
    dest = rnd.choice(DESTS) if rnd.random() < 0.7 else rnd.sample(DESTS, rnd.randint(1, 3))
    return f.rule(f"{name}-{seed % 10_000}" if name == "r" else name,
                  rnd.randint(100, 130) if crowded else rnd.choice([rnd.randint(100, 4096), rnd.randint(4000, 4096)]),
                  direction=rnd.choice(["Outbound", "Outbound", "Inbound"]), access=rnd.choice(["Allow", "Deny"]),
                  protocol=rnd.choice(PROTOCOLS), dest=dest, ports=rnd.choice(PORTS), source=rnd.choice(SOURCES),
                  description=rnd.choice(["", "kept as is"]))


@st.composite
def scenarios(draw):
    knobs = random.Random(draw(st.integers(0, 2**32)))
    # Priorities anywhere in 100-4096 or near ExfilGuard's deny priority, or crowded at the top
    # (priority 100 up) so that room runs out above a blocking Deny.
    crowded = knobs.random() < 0.25
    rules = [_rule_from(seed, crowded) for seed in draw(st.lists(st.integers(0, 2**32), max_size=12))]
    if knobs.random() < 0.35:  # drift on top of a compliant NSG: NSG-02 or NSG-03 without NSG-01
        rules = [*f.compliant_nsg_rules("westeurope"), *rules]
    seen, unique = set(), []
    for r in rules:  # ARM refuses two rules of one name, or of one priority and direction
        p = r["properties"]
        key = (p["priority"], p["direction"])
        if r["name"].lower() in seen or key in seen:
            continue
        seen |= {r["name"].lower(), key}
        unique.append(r)
    nsg = f.nsg(RG, "nsg-prop", "westeurope", unique)
    if knobs.random() < 0.5:  # the default rules as ARM returns them (else assumed)
        nsg["properties"]["defaultSecurityRules"] = [
            {"name": n, "id": f"{nsg['id']}/defaultSecurityRules/{n}", "properties": {
                "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefix": src,
                "destinationAddressPrefix": dst, "access": access, "priority": prio, "direction": direction}}
            for n, _, direction, access, prio, src, dst in _AZURE_DEFAULTS]
    regions = knobs.choice([("westeurope",), ("westeurope", "westeurope"), ("westeurope", "eastus")])
    cfg = Config(mode="remediate", curated_environments=knobs.random() < 0.5, secured_monitor=knobs.random() < 0.5,
                 storage_smb=knobs.random() < 0.5, deny_priority=knobs.choice([4096, 4096, 4000, 120, 100]))
    return guarded(nsg, regions, hbi=knobs.random() < 0.5), nsg["id"], cfg


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
        sample = [check_fix(drifted, pic.nsgs[key].id, cfg) for key in pic.guarded_nsg_keys()]
        for outcome in sample:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        # The sample's two NSG-egress NSGs drifted and are fixed whole; the firewalled spoke's NSG
        # has nothing for an NSG fix to do (its drift is in the firewall policy).
        assert sorted(sample) == ["clean", "fixed", "fixed"], sample
    assert outcomes.get("fixed", 0) >= 100, outcomes
