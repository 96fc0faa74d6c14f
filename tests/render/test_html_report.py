"""``exfilguard scan --format html``: one self-contained page that draws each workspace's path.

The drifted sample's page is opened in headless Chromium over the DevTools protocol
(tests/browser.py): it logs no error, fetches nothing but itself, holds every finding of the
JSON report and every node of the drawings, and its filters change what is visible. The
screenshot it takes is docs/report.png. Hostile names are shown as text, never run.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exfilguard.cli.main import main
from exfilguard.core import ids
from exfilguard.core.config import Config
from exfilguard.core.picture import build
from exfilguard.render import report
from exfilguard.render.html import CSP, evaluate_with_paths, render
from exfilguard.render.html.page import NODE_H, NODE_W, _layout
from exfilguard.render.html.paths import COMPUTE, CONTROL, FIREWALL, STORAGE, SUBNET, WORKSPACE, network_paths
from tests import factory as f
from tests.alerts_support.png import colours, read_png
from tests.browser import Browser

pytestmark = pytest.mark.usefixtures("clean_env")

REPO = Path(__file__).resolve().parents[2]
DRIFTED = REPO / "samples" / "drifted-subscription.json"
SCREENSHOT = REPO / "docs" / "report.png"
CRITICAL_RED = (0xA4, 0x26, 0x2C)


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The drifted sample's HTML (as the CLI writes it), its JSON report and its paths."""
    folder = tmp_path_factory.mktemp("html")
    with pytest.MonkeyPatch.context() as mp:  # a fixed date: the same page, so the same screenshot
        mp.setenv("SOURCE_DATE_EPOCH", "1798761600")
        code, page = cli("scan", "--snapshot", str(DRIFTED), "--format", "html")
    assert code == 1
    assert "generated 2027-01-01 00:00 UTC" in page
    code, text = cli("scan", "--snapshot", str(DRIFTED), "--format", "json")
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    bodies = json.loads(DRIFTED.read_text())
    _, paths = evaluate_with_paths(bodies, Config())
    return {"path": path, "html": page, "json": json.loads(text), "paths": paths}


# ---------------------------------------------------------------------------------- browser
def test_drifted_report_in_chromium(drifted: dict, tmp_path: Path) -> None:
    url = drifted["path"].as_uri()
    with Browser(tmp_path / "profile", width=1600, height=1400) as b:
        b.open(url)
        assert b.errors() == []
        assert b.requests() == [url], "the page fetches nothing but itself"

        shown = b.evaluate("Array.from(document.querySelectorAll('li.f')).map(li => "
                           "[li.querySelector('.rule').textContent, li.querySelector('.rid').textContent])")
        expected = {(x["ruleId"], x["resourceId"]) for x in drifted["json"]["findings"]}
        assert len(expected) == len(drifted["json"]["findings"]) >= 20
        assert {tuple(s) for s in shown} == expected, "every finding, with its rule ID and resource"

        drawn = b.evaluate("Object.fromEntries(Array.from(document.querySelectorAll('section[data-workspace]'))"
                           ".map(s => [s.dataset.workspace, Array.from(s.querySelectorAll('svg [data-node]'))"
                           ".map(g => g.dataset.node)]))")
        want = {p.resource_id: sorted(n.key for n in p.nodes) for p in drifted["paths"].workspaces
                if not p.summarised}
        assert {k: sorted(v) for k, v in drawn.items()} == want
        assert sum(len(v) for v in want.values()) >= 15
        titles = b.evaluate("Array.from(document.querySelectorAll('svg.net')).map(s => "
                            "document.getElementById(s.getAttribute('aria-labelledby')).textContent)")
        assert len(titles) == len(want) >= 2 and all(t.startswith("Network path of workspace") for t in titles)

        count = "document.getElementById('shown').textContent"
        visible = ("Array.from(document.querySelectorAll('li.f')).filter(li => li.offsetParent !== null)"
                   ".map(li => li.dataset.sev + ' ' + li.dataset.fam + ' ' + li.dataset.status)")
        assert b.evaluate(count) == str(len(expected))
        before = b.evaluate(visible)
        assert any(v.startswith("critical ") for v in before)
        b.evaluate("document.querySelector('input[name=sev][value=critical]').click()")
        after = b.evaluate(visible)
        assert after and not any(v.startswith("critical ") for v in after)
        assert b.evaluate(count) == str(21 - 4)
        b.evaluate("document.querySelector('input[name=fam][value=NSG]').click()")
        assert not any(" NSG " in v for v in b.evaluate(visible))
        b.evaluate("document.querySelector('input[name=st][value=exempt]').click()")
        assert not any(v.endswith(" exempt") for v in b.evaluate(visible))
        for name, value in (("sev", "critical"), ("fam", "NSG"), ("st", "exempt")):
            b.evaluate(f"document.querySelector('input[name={name}][value={value}]').click()")
        assert b.evaluate(count) == str(len(expected))
        assert len(b.evaluate(visible)) == len(before)

        # Dark mode and print change the page's look, not its content.
        light = b.evaluate("getComputedStyle(document.body).backgroundColor")
        b.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}])
        assert b.evaluate("getComputedStyle(document.body).backgroundColor") != light
        b.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "light"}])
        b.call("Emulation.setEmulatedMedia", media="print")
        assert b.evaluate("getComputedStyle(document.getElementById('filters')).display") == "none"
        b.call("Emulation.setEmulatedMedia", media="")

        shot = b.screenshot()
        assert b.errors() == []
    png = read_png(shot)
    assert (png.width, png.height) == (1600, 1400)
    seen = colours(png, rows=900)
    assert len(seen) > 50, "text, fills and lines, not a blank page"
    assert CRITICAL_RED in seen  # the critical card and badges
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.write_bytes(shot)


def _hostile_snapshot() -> list[dict]:
    """The drifted sample with markup in a compute's name, a tag, and an exemption's reason."""
    bodies = copy.deepcopy(json.loads(DRIFTED.read_text()))
    compute = next(b for b in bodies if b["type"].endswith("/computes") and b["name"] == "gpu-cluster-legacy")
    evil = "gpu<img src=x onerror=alert(1)><svg onload=alert(2)>"
    compute["id"] = compute["id"].replace("gpu-cluster-legacy", evil)
    compute["name"] = evil
    ws = next(b for b in bodies if b["type"].endswith("/workspaces") and b["name"] == "mlw-westeurope")
    ws.setdefault("tags", {})["owner"] = "<script>alert(3)</script>"
    until = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()  # within max_exemption_days
    ws["tags"]["exfilguard-exempt"] = f"EXF-WS-01;until={until};reason=<script>alert(4)</script>"
    return bodies


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts = 0
        self.handlers: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.scripts += tag == "script"
        self.handlers += [f"{tag} {k}" for k, _ in attrs if k.startswith("on")]


def test_hostile_names_are_text_and_no_script_from_the_data_runs(tmp_path: Path) -> None:
    bodies = _hostile_snapshot()
    evaluation, paths = evaluate_with_paths(bodies, Config())
    doc = report.to_json(evaluation)
    assert any("<img src=x" in x["resourceId"] for x in doc["findings"])
    assert any((x.get("exemption") or {}).get("reason") == "<script>alert(4)</script>" for x in doc["findings"])
    page = render(doc, paths, source="hostile.json")
    parsed = _Tags()
    parsed.feed(page)
    assert parsed.scripts == 1, "only the page's own script"
    assert parsed.handlers == []
    assert "img" not in parsed.tags
    # Escaping alone must hold: load the page once without its CSP too.
    no_csp = page.replace(f'<meta http-equiv="Content-Security-Policy" content="{CSP}">', "")
    assert no_csp != page
    for name, text in (("with-csp.html", page), ("without-csp.html", no_csp)):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with Browser(tmp_path / f"profile-{name}") as b:
            b.open(path.as_uri())
            assert b.dialogs() == [], "a script from the data ran"
            assert b.errors() == []
            assert b.requests() == [path.as_uri()], "the hostile <img> was not fetched: it is text"
            assert b.evaluate("document.scripts.length") == 1
            shown = b.evaluate("document.body.innerText")
            assert "gpu<img src=x onerror=alert(1)><svg onload=alert(2)>" in shown
            assert "<script>alert(4)</script>" in shown


# ---------------------------------------------------------------------------------- CLI
def test_cli_writes_a_self_contained_page(drifted: dict) -> None:
    page = drifted["html"]
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page), "nothing loaded from elsewhere"
    assert "@import" not in page and "url(" not in page
    assert page.count("<script>") == 1 and page.count("<style>") == 1
    assert f'content="{CSP}"' in page
    assert "default-src 'none'" in CSP and "'unsafe-inline'" not in CSP
    report = drifted["json"]
    for severity, count in report["summary"]["bySeverity"].items():
        assert f'<span class="n">{count}</span>{severity}' in page
    # Fixed / would fix / needs a person / exempt, as the JSON report has them.
    findings = [x for x in report["findings"] if not x["exempt"]]
    would_fix = sum(1 for x in findings if x["fix"]["mode"] == "auto")
    assert would_fix > 0
    assert f'data-count="would-fix"><span class="n">{would_fix}</span>' in page
    assert f'data-count="needs-person"><span class="n">{len(findings) - would_fix}</span>' in page
    exempt = sum(1 for x in report["findings"] if x["exempt"])
    assert f'data-count="exempt"><span class="n">{exempt}</span>' in page
    # The sample's exemption runs to 2099, past max_exemption_days: listed as exempting nothing.
    assert "too far ahead" in page and "more than 90 days after" in page


def test_live_scan_html_shows_what_was_fixed(tmp_path: Path) -> None:
    from tests.arm_support import emulator

    with emulator() as emu:
        code, page = cli("scan", "--subscription", f.SUB, "--arm-endpoint", emu.url, "--format", "html",
                         "--remediate")
    assert code == 1
    assert "live scan of subscription" in page
    assert 'data-count="fixed"><span class="n">10</span>' in page  # every automatic fix was applied
    assert 'data-count="would-fix"><span class="n">0</span>' in page
    workspaces = [b for b in json.loads(DRIFTED.read_text()) if b["type"].lower().endswith("/workspaces")]
    assert page.count('class="ws ') == len(workspaces) >= 2 and "<svg" in page  # the emulator serves the sample


def test_snapshot_errors_stay_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    code, out = cli("scan", "--snapshot", str(bad), "--format", "html")
    assert code == 2 and out == ""
    assert capsys.readouterr().err.startswith("exfilguard: error:")


# ---------------------------------------------------------------------------------- the drawing
def _egress_subscription() -> list[dict]:
    """One workspace whose subnet routes to a firewall, plus a route to an unknown appliance."""
    bodies = f.region_stack("rg-fw", "westeurope", 7)
    vnet = bodies[0]
    rt_id = f"/subscriptions/{f.SUB}/resourceGroups/rg-fw/providers/Microsoft.Network/routeTables/rt-egress"
    rt2_id = rt_id.replace("rt-egress", "rt-other")
    vnet["properties"]["subnets"][0]["properties"]["routeTable"] = {"id": rt_id}
    fw_id = f"/subscriptions/{f.SUB}/resourceGroups/rg-fw/providers/Microsoft.Network/azureFirewalls/fw-hub"
    route = {"name": "default", "properties": {"addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance",
                                               "nextHopIpAddress": "10.7.0.4"}}
    other = {"name": "x", "properties": {"addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance",
                                         "nextHopIpAddress": "10.9.9.9"}}
    bodies += [
        {"id": rt_id, "name": "rt-egress", "type": "Microsoft.Network/routeTables", "location": "westeurope",
         "properties": {"routes": [route]}},
        {"id": rt2_id, "name": "rt-other", "type": "Microsoft.Network/routeTables", "location": "westeurope",
         "properties": {"routes": [other]}},
        {"id": fw_id, "name": "fw-hub", "type": "Microsoft.Network/azureFirewalls", "location": "westeurope",
         "properties": {"ipConfigurations": [{"name": "c", "properties": {"privateIPAddress": "10.7.0.4"}}]}},
    ]
    return bodies


def test_route_table_and_firewall_get_their_columns() -> None:
    bodies = _egress_subscription()
    paths = network_paths(build(bodies, ()), bodies)
    (ws,) = paths.workspaces
    kinds = {n.kind: n for n in ws.nodes}
    assert {"compute", "subnet", "nsg", "sep", "routetable", "firewall", "storage", "workspace"} == set(kinds)
    assert kinds["routetable"].column == CONTROL and kinds["firewall"].column == FIREWALL
    rt, fw, st = kinds["routetable"].key, kinds["firewall"].key, kinds["storage"].key
    assert (rt, fw) in ws.edges and (fw, st) in ws.edges and (rt, st) not in ws.edges
    assert kinds["firewall"].note == "10.7.0.4"
    # Without the route table and firewall bodies the route table is still drawn (from the
    # subnet's reference) as missing, and there is no firewall column.
    bare = [b for b in bodies if "routeTables" not in b["type"] and "azureFirewalls" not in b["type"]]
    (ws,) = network_paths(build(bare, ()), bare).workspaces
    assert {n.kind for n in ws.nodes} == {"compute", "subnet", "nsg", "sep", "routetable", "storage", "workspace"}
    assert next(n for n in ws.nodes if n.kind == "routetable").missing
    assert FIREWALL not in {n.column for n in ws.nodes}


def test_unknown_appliance_is_drawn_as_such() -> None:
    bodies = _egress_subscription()
    vnet = bodies[0]
    vnet["properties"]["subnets"][0]["properties"]["routeTable"]["id"] = bodies[-2]["id"]
    (ws,) = network_paths(build(bodies, ()), bodies).workspaces
    hop = next(n for n in ws.nodes if n.column == FIREWALL)
    assert hop.kind == "appliance" and "10.9.9.9" in hop.label


def test_fifty_computes_on_twenty_subnets_stay_legible() -> None:
    ws = f.workspace("rg-big", "mlw-big", "westeurope", f.storage("rg-big", "stbig", "westeurope")["id"])
    nsg = f.nsg("rg-big", "nsg-big", "westeurope", f.compliant_nsg_rules("westeurope"))
    vid = f.vnet_id("rg-big", "vnet-big")
    subnets = [f.subnet(vid, f"snet-{i:02d}", f"10.0.{i}.0/24", nsg["id"], [], []) for i in range(20)]
    computes = [f.compute(ws["id"], f"cc-{i:02d}", "westeurope", subnet=subnets[(i * 7) % 20]["id"])
                for i in range(50)]
    bodies = [ws, nsg, f.vnet("rg-big", "vnet-big", "westeurope", "10.0.0.0/16", subnets), *computes]
    (path,) = network_paths(build(bodies, ()), bodies).workspaces
    pos, cols, width, height = _layout(path)
    assert [c for c, _ in cols] == [COMPUTE, SUBNET, CONTROL, STORAGE, WORKSPACE]
    boxes = sorted(pos.values())
    assert len(boxes) == 50 + 20 + 1 + 1 + 1
    for (x1, y1), (x2, y2) in itertools.pairwise(boxes):  # no two boxes overlap
        assert x1 != x2 or y2 - y1 >= NODE_H
    assert all(x >= 0 and x + NODE_W <= width and y >= 0 and y + NODE_H <= height for x, y in boxes)
    # Computes are grouped by subnet, in the subnets' order: edges do not cross within a group.
    by_key = {n.key: n for n in path.nodes}
    subnet_y = {k: pos[k][1] for k, n in by_key.items() if n.kind == "subnet"}
    compute_order = [n.key for n in path.nodes if n.kind == "compute"]
    targets = [subnet_y[b] for a in compute_order for (x, b) in path.edges if x == a]
    assert targets == sorted(targets)
    assert height < 50 * (NODE_H + 10) + 60 and width < 1100


def test_findings_off_the_drawn_paths_are_still_listed() -> None:
    doc = {"findings": [{"ruleId": "EXF-XYZ-09", "resourceId": "/subscriptions/s/resourceGroups/g/providers/A.B/c/d",
                         "severity": "low", "title": "t", "detail": "d", "exempt": False,
                         "fix": {"mode": "manual", "summary": "s"}}], "summary": {"resources": 1}}
    page = render(doc, None)
    assert "Findings not on a drawn path (1)" in page and "EXF-XYZ-09" in page
    assert 'value="XYZ"' in page


def test_sweep_report_counts_written_failed_and_blocked_fixes() -> None:
    rid = ids.key(f.nsg_id("rg", "n"))
    base = {"resourceId": f.nsg_id("rg", "n"), "severity": "high", "title": "t", "detail": "d", "exempt": False,
            "fix": {"mode": "auto", "summary": "s"}}
    doc = {"findings": [{**base, "ruleId": "EXF-NSG-01"}, {**base, "ruleId": "EXF-NSG-02"},
                        {**base, "ruleId": "EXF-NSG-03", "resourceId": f.nsg_id("rg", "m")}],
           "summary": {"resources": 2}, "mode": "remediate", "sweep": {"id": "abc", "trigger": "timer"},
           "actions": {"writes": [{"resourceId": rid, "rules": ["EXF-NSG-01"], "status": "applied"},
                                  {"resourceId": rid, "rules": ["EXF-NSG-02"], "status": "failed",
                                   "message": "403 <b>denied</b>"}],
                       "loopGuardBlocked": [f.nsg_id("rg", "m")]}}
    page = render(doc, None)
    assert 'data-count="fixed"><span class="n">1</span>' in page
    assert 'data-count="needs-person"><span class="n">2</span>' in page
    assert "automatic fix failed: 403 &lt;b&gt;denied&lt;/b&gt;" in page
    assert "paused by the loop guard" in page and "sweep abc (timer)" in page


_MARKUP = ("<script>", "</script>", "<img src=x onerror=alert(1)>", "<svg onload=alert(2)>", '"', "'", "&amp;",
           "&", "<", ">", "</p>", "<!--", "-->", "<![CDATA[", "a", " ", "é", "\n", "javascript:")
_TEXT = st.one_of(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
                  st.lists(st.one_of(st.sampled_from(_MARKUP), st.text(max_size=3)), max_size=12).map("".join))


@settings(max_examples=150, deadline=None)
@given(rule=_TEXT, rid=_TEXT, title=_TEXT, detail=_TEXT, summary=_TEXT, reason=_TEXT, sev=_TEXT)
def test_any_text_in_a_report_stays_text(rule, rid, title, detail, summary, reason, sev) -> None:
    """Whatever the strings of a report hold, the page has only its own script and no event
    handler, and each string reads back as itself."""
    doc = {"findings": [{"ruleId": rule, "resourceId": rid, "severity": sev, "title": title, "detail": detail,
                         "exempt": True, "exemption": {"until": "2099-01-01", "reason": reason},
                         "fix": {"mode": "auto", "summary": summary}}],
           "notices": [{"kind": "expired-exemption", "resourceId": rid, "message": reason}],
           "summary": {"resources": 1}}
    page = render(doc, None, title=title)
    parsed = _Text()
    parsed.feed(page)
    parsed.close()
    assert parsed.scripts == 1 and parsed.handlers == []
    for text in (rule, rid, title, detail, summary, reason):
        assert _squash(text) in parsed.text


class _Text(_Tags):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    @property
    def text(self) -> str:
        return _squash("".join(self.chunks))


def _squash(text: str) -> str:
    """HTML parsing turns CR and CRLF into LF (and a NUL into U+FFFD): compare modulo those."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")


def test_a_firewall_policy_finding_is_drawn_beside_its_policy_after_the_firewall() -> None:
    """FW findings name the firewall policy: the drawing follows the firewall to its policy (and
    base policies), and the policy's finding is listed beside that box."""
    bodies = json.loads(DRIFTED.read_text())
    evaluation, paths = evaluate_with_paths(bodies, Config())
    [fw01] = [x for x in evaluation.findings if x.rule_id == "EXF-FW-01"]
    [path] = [p for p in paths.workspaces if any(n.kind == "firewallpolicy" for n in p.nodes)]
    [policy] = [n for n in path.nodes if n.kind == "firewallpolicy"]
    assert policy.key == ids.key(fw01.resource_id) and not policy.missing
    [firewall] = [n for n in path.nodes if n.kind == "firewall"]
    assert (firewall.key, policy.key) in path.edges
    page = render(report.to_json(evaluation), paths)
    assert f'data-node="{policy.key}"' in page
    listed = page.split("Firewall policy fwp-", 1)[1].split("</div>", 1)[0]  # the findings beside the box
    assert "EXF-FW-01" in listed


def test_what_if_scan_renders_html_with_the_paths_after_the_deployment() -> None:
    whatif = REPO / "tests" / "data" / "whatif" / "handmade_whatif_leaky_nsg_rule.json"
    base = REPO / "samples" / "compliant-subscription.json"
    code, page = cli("scan", "--what-if", str(whatif), "--snapshot", str(base), "--format", "html")
    assert code == 1 and page.startswith("<!DOCTYPE html>")
    assert "EXF-NSG-02" in page and '<section class="ws ' in page and "<svg" in page
