"""The NSG fixes are safe to switch on: required outbound flows as the baseline's table,
permitted tag ports, fail-closed reading of malformed rules, and the invariant every NSG write
keeps (each required flow of each guarded subnet Allowed, no generic internet destination
Allowed), proven by hypothesis over generated NSGs and on every NSG the repository holds."""

from __future__ import annotations

import copy
import json

from exfilguard.adapters.configfile import load_config
from exfilguard.core import engine
from exfilguard.core import nsg_decisions as decisions
from exfilguard.core.config import Config, parse
from exfilguard.core.fixes import apply_edits
from exfilguard.core.model import parse_rule
from exfilguard.core.picture import build
from exfilguard.core.rules import nsg as nsg_rules
from tests import factory as f
from tests.support import SAMPLES, by_rule, run

RG, REGION = "rg-a", "westeurope"
NSG_ID = f.nsg_id(RG, f"nsg-ml-{REGION}")


def stack() -> list[dict]:
    return f.region_stack(RG, REGION, 10)


def named(res: list[dict], name: str) -> dict:
    return next(r for r in res if r["name"] == name)


def nsg_body(res: list[dict]) -> dict:
    return named(res, f"nsg-ml-{REGION}")


def rules_of(res: list[dict]) -> list[dict]:
    return nsg_body(res)["properties"]["securityRules"]


def labels(flows) -> set[str]:
    return {fl.label() for fl in flows}


# --- the required flows -------------------------------------------------------------------------
BASIC = {"AzureActiveDirectory TCP/80", "AzureActiveDirectory TCP/443", "AzureMachineLearning TCP/443",
         "AzureMachineLearning TCP/8787", "AzureMachineLearning TCP/18881", "AzureMachineLearning UDP/5831",
         f"BatchNodeManagement.{REGION} TCP/443", "AzureResourceManager TCP/443", f"Storage.{REGION} TCP/443",
         "VirtualNetwork TCP/443"}
CURATED = {f"MicrosoftContainerRegistry.{REGION} TCP/443", "AzureFrontDoor.FirstParty TCP/443"}


def test_required_flows_are_the_baseline_table():
    flows = nsg_rules._required_flows
    assert labels(flows(REGION, True)) == BASIC | CURATED | {"AzureMonitor TCP/443"}
    assert labels(flows(REGION, False, True)) == BASIC
    assert labels(flows(REGION, True, False, True, True)) == (
        BASIC | CURATED | {"AzureMonitor TCP/443", f"Storage.{REGION} TCP/445", f"AzureKeyVault.{REGION} TCP/443"})


def test_nsg03_is_high_and_sees_entra_id_on_port_80():
    res = stack()
    rules_of(res).append(f.rule("deny-http", 150, access="Deny", dest="Internet", ports="80"))
    [n3] = by_rule(run(res), "EXF-NSG-03")
    assert n3.severity.value == "high"
    assert n3.items == ("AzureActiveDirectory TCP/80 blocked by deny-http",)


def test_compliant_sample_allows_every_required_flow():
    ev = run(json.loads((SAMPLES / "compliant-subscription.json").read_text()))
    assert ev.findings == ()


def test_deny_internet_blocks_arm_monitor_and_aml_ports_unless_allowed():
    """The pre-issue fix: Deny Internet plus Allows for five flows only. Everything else of the
    basic configuration is blocked, and NSG-03 says so and fixes it."""
    res = stack()
    rules_of(res)[:] = [r for r in rules_of(res) if r["name"] in {
        "allow-batchnodemanagement-out", "allow-azuremachinelearning-out", "allow-storage-out", "allow-mcr-out",
        "allow-frontdoorfirstparty-out", "deny-internet-out"}]
    [n3] = by_rule(run(res), "EXF-NSG-03")
    assert {i.split(" blocked")[0] for i in n3.items} == {
        "AzureActiveDirectory TCP/80", "AzureActiveDirectory TCP/443", "AzureMachineLearning TCP/8787",
        "AzureMachineLearning TCP/18881", "AzureMachineLearning UDP/5831", "AzureResourceManager TCP/443",
        "AzureMonitor TCP/443"}
    assert n3.fix_mode == "auto"
    added = {e.value["name"]: e.value["properties"] for e in n3.edits}
    # One rule per destination tag and protocol, listing its blocked ports.
    assert set(added) == {"exfilguard-allow-azureactivedirectory-tcp-80_443",
                          "exfilguard-allow-azuremachinelearning-tcp-8787_18881",
                          "exfilguard-allow-azuremachinelearning-udp-5831",
                          "exfilguard-allow-azureresourcemanager-tcp-443", "exfilguard-allow-azuremonitor-tcp-443"}
    aad = added["exfilguard-allow-azureactivedirectory-tcp-80_443"]
    assert aad["destinationPortRanges"] == ["80", "443"] and aad["protocol"] == "Tcp"
    assert all(p["priority"] < 4096 for p in added.values())
    fixed = [copy.deepcopy(r) for r in res]
    body = nsg_body(fixed)
    body.update(apply_edits(body, n3.edits))
    assert by_rule(run(fixed), "EXF-NSG-03") == [] and by_rule(run(fixed), "EXF-NSG-04") == []


def test_secured_monitor_and_storage_smb_settings():
    res = stack()
    rules_of(res)[:] = [r for r in rules_of(res) if r["name"] != "allow-azuremonitor-out"]
    assert len(by_rule(run(res), "EXF-NSG-03")) == 1
    assert by_rule(run(res, Config(secured_monitor=True)), "EXF-NSG-03") == []
    [smb] = by_rule(run(res, Config(secured_monitor=True, storage_smb=True)), "EXF-NSG-03")
    assert smb.items == (f"Storage.{REGION} TCP/445 blocked by deny-internet-out",)
    assert [e.value["properties"]["destinationPortRange"] for e in smb.edits] == ["445"]


def test_settings_load_from_environment_and_yaml(tmp_path):
    cfg = parse({"EXFILGUARD_SECURED_MONITOR": "true", "EXFILGUARD_STORAGE_SMB": "1"})
    assert cfg.secured_monitor and cfg.storage_smb
    assert not parse({}).secured_monitor and not parse({}).storage_smb
    path = tmp_path / "c.yaml"
    path.write_text("securedMonitor: true\nstorage_smb: true\n")
    cfg = load_config(path, environ={})
    assert cfg.secured_monitor and cfg.storage_smb
    from exfilguard.core.config import ConfigError

    try:
        parse({"EXFILGUARD_STORAGE_SMB": "perhaps"})
    except ConfigError as exc:
        assert "EXFILGUARD_STORAGE_SMB" in str(exc)
    else:
        raise AssertionError("a bad boolean must be refused")


def test_hbi_workspace_requires_key_vault():
    res = stack()
    assert by_rule(run(res), "EXF-NSG-03") == []
    named(res, f"mlw-{REGION}")["properties"]["hbiWorkspace"] = True
    [n3] = by_rule(run(res), "EXF-NSG-03")
    assert n3.items == (f"AzureKeyVault.{REGION} TCP/443 blocked by deny-internet-out",)
    [edit] = n3.edits
    assert edit.value["properties"]["destinationAddressPrefix"] == f"AzureKeyVault.{REGION}"


def test_permitted_tag_ports_follow_the_baseline():
    res = stack()
    rules_of(res).extend([
        f.rule("aad-80", 401, dest="AzureActiveDirectory", ports=["80", "443"]),
        f.rule("smb", 402, dest=f"Storage.{REGION}", ports="445"),
        f.rule("kv", 403, dest=f"AzureKeyVault.{REGION}", ports="443"),
        f.rule("mcr-global", 404, dest="MicrosoftContainerRegistry", ports="443")])
    ev = run(res)
    assert by_rule(ev, "EXF-NSG-02") == [] and by_rule(ev, "EXF-NSG-04") == []


def test_global_mcr_is_permitted_on_tcp_443_only():
    res = stack()
    rules_of(res).append(f.rule("mcr-global", 404, dest="MicrosoftContainerRegistry", ports="443"))
    assert by_rule(run(res), "EXF-NSG-02") == []
    rules_of(res)[-1]["properties"]["destinationPortRange"] = "80"
    [n4] = by_rule(run(res), "EXF-NSG-04")
    assert "MicrosoftContainerRegistry" in n4.detail
    assert by_rule(run(res), "EXF-NSG-02") == []


def test_internet_never_covers_virtual_network():
    deny_internet = decisions.Flow("tcp", 443, "VirtualNetwork")
    nsg = f.nsg_id("rg", "n")
    for dest, covers in (("Internet", False), ("*", True), ("0.0.0.0/0", True)):
        rule = parse_rule(f.rule("r", 100, dest=dest, nsg=nsg))
        assert decisions.matches(rule, deny_internet, ("10.0.0.0/24",)) == covers, dest
    res = stack()
    rules_of(res).append(f.rule("deny-all", 4000, access="Deny", protocol="*", dest="*", ports="*"))
    [n3] = by_rule(run(res), "EXF-NSG-03")
    assert f"{deny_internet.label()} blocked by deny-all" in n3.items


def test_an_added_rule_never_replaces_an_existing_one():
    """A rule already named like ExfilGuard's deny rule (here an Allow of the internet) is set
    to Deny by NSG-02, and the deny rule NSG-01 adds takes a name of its own."""
    res = stack()
    rules_of(res)[:] = [r for r in rules_of(res) if r["name"] != "deny-internet-out"]
    rules_of(res).append(f.rule(nsg_rules.DENY_RULE_NAME, 4050, dest="Internet", protocol="*", ports="*"))
    ev = run(res)
    [n1] = by_rule(ev, "EXF-NSG-01")
    assert [e.value["name"] for e in n1.edits] == [f"{nsg_rules.DENY_RULE_NAME}-2"]
    [n2] = by_rule(ev, "EXF-NSG-02")
    assert n2.fix_mode == "auto"


def test_no_free_priority_makes_every_outbound_fix_manual():
    """A Deny of everything at priority 100 leaves no room above it for the Allows required
    flows need: no outbound fix is written (NSG-01, 02, 03 manual), the summary says why."""
    res = stack()
    rules_of(res).append(f.rule("deny-everything", 100, access="Deny", protocol="*", dest="*", ports="*"))
    rules_of(res).append(f.rule("open-web", 150, dest="Internet", ports="80"))
    ev = run(res)
    for rule_id in ("EXF-NSG-02", "EXF-NSG-03"):
        [finding] = by_rule(ev, rule_id)
        assert finding.fix_mode == "manual" and finding.edits == ()
        assert "no free priority" in finding.fix_summary
    assert engine.plan(ev.findings, Config(mode="remediate")) == []


# --- fail closed on malformed rules (issue 16 item 1) --------------------------------------------
def _one_bad_rule(res: list[dict], **props) -> dict:
    bad = f.rule("bad-rule", 300, dest="Internet", protocol="*", ports="*")
    bad["properties"].update(props)
    rules_of(res)[:] = [bad]
    return bad


def test_malformed_port_range_keeps_the_nsg_and_fails_closed():
    res = stack()
    _one_bad_rule(res, access="Deny", destinationPortRange="80,443")
    ev = run(res)
    [n1] = by_rule(ev, "EXF-NSG-01")  # the unreadable Deny denies nothing: the defaults let everything out
    assert n1.fix_mode == "manual" and n1.edits == () and "bad-rule" in n1.fix_summary
    [n3] = by_rule(ev, "EXF-NSG-03")  # ... and for NSG-03 it denies every flow
    assert n3.fix_mode == "manual"
    [notice] = [n for n in ev.notices if n.kind == "unreadable"]
    assert "bad-rule" in notice.message and "80,443" in notice.message
    assert ev.exit_code() == 1
    assert engine.plan(ev.findings, Config(mode="remediate")) == []


def test_unreadable_allow_matches_everything_for_the_leak_rules():
    res = stack()
    rules = copy.deepcopy(rules_of(res))
    _one_bad_rule(res, access="Allow", priority="early")  # a priority that is no number comes first
    rules_of(res).extend(r for r in rules if r["name"] == "deny-internet-out")
    ev = run(res)
    [n1] = by_rule(ev, "EXF-NSG-01")
    assert "bad-rule (priority 0)" in n1.detail
    [n2] = by_rule(ev, "EXF-NSG-02")
    assert "bad-rule" in n2.detail and n2.fix_mode == "manual"


def test_unreadable_inbound_allow_and_bad_prefix():
    res = stack()
    bad = f.rule("bad-in", 310, direction="Inbound", source="10.0.0.0/33", ports="22")
    rules_of(res).append(bad)
    ev = run(res)
    [n5] = by_rule(ev, "EXF-NSG-05")
    assert "bad-in" in n5.detail and n5.fix_mode == "manual"
    assert by_rule(ev, "EXF-NSG-03") == []  # an unreadable Allow blocks no required flow
    assert any(n.kind == "unreadable" and "10.0.0.0/33" in n.message for n in ev.notices)


def test_standalone_malformed_rule_is_kept_on_its_nsg():
    res = stack()
    bad = f.rule("bad-standalone", 320, access="Deny", ports="443,80", nsg=NSG_ID)
    bad["id"] = f"{NSG_ID}/securityRules/bad-standalone"
    pic = build([*res, bad])
    [nsg] = [n for k, n in pic.nsgs.items() if k == NSG_ID.lower()]
    assert [u.name for u in nsg.unreadable] == ["bad-standalone"]
    ev = run([*res, bad])
    [n3] = by_rule(ev, "EXF-NSG-03")
    assert n3.fix_mode == "manual" and "bad-standalone" in n3.detail


def test_unreadable_rule_with_unknown_protocol():
    res = stack()
    rules_of(res).append(f.rule("odd", 330, access="Deny", protocol="Tcpp", dest="Storage", ports="443"))
    ev = run(res)
    assert [n.kind for n in ev.notices] == ["unreadable"]
    assert by_rule(ev, "EXF-NSG-03")[0].fix_mode == "manual"


# --- large NSGs cost time linear in their rules (issue 16 item 10) -------------------------------
def _calls(bodies: list[dict]) -> int:
    """Python function calls made by a whole evaluation and plan (no clock involved)."""
    import sys

    count = 0

    def profile(frame, event, arg):
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        cfg = Config(mode="remediate")
        engine.plan(engine.evaluate(build(bodies), cfg).findings, cfg)
    finally:
        sys.setprofile(None)
    return count


def test_large_nsg_evaluation_is_linear_in_rules():
    """A drifted NSG with an edit planned for a quarter of its rules: four times the rules cost
    at most about four times the work (the planned-state code once walked the rule list per
    edit: 1.27 M calls at 1,000 rules)."""
    from bench.nsg_rules import subscription

    small, large = _calls(subscription(300)), _calls(subscription(1200))
    assert large <= 4.4 * small, (small, large)


def test_a_standalone_rule_that_reads_replaces_an_inline_misfit():
    res = stack()
    bad = f.rule("fixed-later", 340, access="Deny", ports="443,80", nsg=NSG_ID)
    rules_of(res).append(bad)
    good = copy.deepcopy(bad)
    good["properties"]["destinationPortRange"] = "443"
    assert [u.name for u in build(res).nsgs[NSG_ID.lower()].unreadable] == ["fixed-later"]
    nsg = build([*res, good]).nsgs[NSG_ID.lower()]
    assert nsg.unreadable == () and "fixed-later" in [r.name for r in nsg.rules]
