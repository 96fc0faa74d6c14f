"""The report as one self-contained HTML page: summary, one drawing per workspace, filters.

:func:`render` is a function of two pieces of data: the JSON report (``report.to_json`` of any
scan: snapshot, live, what-if, a Function app sweep) and the workspaces' network paths
(:mod:`exfilguard.render.html.paths`). Nothing is fetched: the CSS, the SVG drawings and a few
lines of script for the filters are all inline, and the page's own Content-Security-Policy
allows exactly that inline style and script (by hash) and nothing else, so the file works
offline and as an e-mail attachment, and no name from the data can run as script.

Every string from the data goes through :func:`html.escape`; the script and the style are
constants (their hashes are worked out once, at import), never built from data.

The drawing is laid out here, in columns (no Graphviz binary exists on the Function app):
nodes of a column are ordered by the subnet they serve, which keeps edges mostly parallel,
and the columns are centred on the tallest, so 50 computes on 20 subnets stay legible.
Workspaces without findings are listed, not drawn, so a 100,000-resource subscription makes a
page a browser opens; every finding is in the page whatever its size.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape as _escape
from typing import Any

from exfilguard.core import ids
from exfilguard.render.html.paths import COLUMN_TITLES, NetworkPaths, Node, WorkspacePath, _workspace_key

SEVERITIES = ("critical", "high", "medium", "low")
_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}
STATUSES = ("fixed", "would-fix", "needs-person", "exempt")
STATUS_WORDS = {"fixed": "fixed", "would-fix": "would fix", "needs-person": "needs a person", "exempt": "exempt"}
KIND_WORDS = {"compute": "Compute", "subnet": "Subnet", "nsg": "NSG", "sep": "Service endpoint policy",
              "routetable": "Route table", "firewall": "Firewall", "firewallpolicy": "Firewall policy",
              "appliance": "Virtual appliance",
              "storage": "Storage account", "workspace": "Workspace", "none": "No virtual network"}
CLEAN_LISTED = 200  # workspaces without findings named one by one; the rest are counted

# Drawing geometry (px).
NODE_W, NODE_H, ROW_GAP, COL_GAP, PAD, HEAD = 164, 34, 8, 36, 8, 22
LABEL_CHARS, NOTE_CHARS = 23, 28

STYLE = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1b1f;--muted:#5c5f66;--line:#d0d3d9;--card:#f5f6f8;
--critical:#a4262c;--high:#c43e00;--medium:#8a6d00;--low:#0063b1;--ok:#107c10;--exempt:#6b6f76;
--critical-bg:#fde7e9;--high-bg:#fdeee3;--medium-bg:#fff6d6;--low-bg:#e5f1fb;--ok-bg:#e7f4e4;--exempt-bg:#eeeff1}
@media (prefers-color-scheme:dark){:root{--bg:#17181b;--fg:#e8e9ec;--muted:#a3a7ae;--line:#3a3d44;--card:#22242a;
--critical:#ff8a8f;--high:#ffa36b;--medium:#f0cf5a;--low:#6cb8f6;--ok:#7fd17a;--exempt:#a3a7ae;
--critical-bg:#4a1f23;--high-bg:#4a2a16;--medium-bg:#41380f;--low-bg:#14324b;--ok-bg:#1c3b1c;--exempt-bg:#2c2e33}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"DejaVu Sans",sans-serif}
header,main,footer{max-width:1600px;margin:0 auto;padding:0 20px}
header{padding-top:18px}h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:26px 0 10px;
border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:16px;margin:0}h4{font-size:14px;margin:0 0 4px}
.meta,.muted{color:var(--muted)}code{font:12px/1.35 ui-monospace,"DejaVu Sans Mono",monospace;word-break:break-all}
.rid{font-size:11px;color:var(--muted)}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.card{min-width:130px;padding:8px 12px;border-radius:8px;background:var(--card);border-left:6px solid var(--line)}
.card .n{display:block;font-size:24px;font-weight:700}
.sev-critical{--c:var(--critical);--cb:var(--critical-bg)}.sev-high{--c:var(--high);--cb:var(--high-bg)}
.sev-medium{--c:var(--medium);--cb:var(--medium-bg)}.sev-low{--c:var(--low);--cb:var(--low-bg)}
.sev-ok{--c:var(--ok);--cb:var(--ok-bg)}.sev-exempt{--c:var(--exempt);--cb:var(--exempt-bg)}
.card[class*=sev-]{border-left-color:var(--c)}
.badge{display:inline-block;min-width:64px;text-align:center;font-size:11px;font-weight:700;letter-spacing:.04em;
padding:1px 6px;border-radius:4px;color:var(--bg);background:var(--c,var(--muted))}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;vertical-align:top;padding:4px 8px;
border-bottom:1px solid var(--line)}th{font-size:12px;color:var(--muted)}
form#filters{position:sticky;top:0;z-index:2;background:var(--bg);border-bottom:1px solid var(--line);
padding:8px 0;display:flex;flex-wrap:wrap;gap:8px 20px;align-items:center}
fieldset{border:1px solid var(--line);border-radius:6px;padding:2px 8px;margin:0}legend{font-size:12px;
color:var(--muted);padding:0 4px}label{margin-right:10px;white-space:nowrap}
.ws{border:1px solid var(--line);border-radius:10px;padding:12px;margin:14px 0;break-inside:avoid}
.ws>header{display:flex;gap:10px;align-items:baseline;flex-wrap:wrap;padding:0;margin:0 0 8px}
.ws-body{display:grid;grid-template-columns:max-content minmax(320px,1fr);gap:14px;align-items:start}
@media (max-width:1350px){.ws-body{grid-template-columns:minmax(0,1fr)}}
figure{margin:0;overflow-x:auto}
@media screen and (min-width:1351px){.ws-body figure{position:sticky;top:64px}}
svg.net{display:block;max-width:none;font:12px system-ui,"DejaVu Sans",sans-serif}
svg .colh{fill:var(--muted);font-size:11px;font-weight:700}
svg .e{fill:none;stroke:var(--muted);stroke-opacity:.55;stroke-width:1.3}
svg .nd rect{fill:var(--cb);stroke:var(--c);stroke-width:2}svg .nd text{fill:var(--fg)}
svg .nd .sub{fill:var(--muted);font-size:10px}svg .nd .cnt{fill:var(--c);font-weight:700}
svg .nd.missing rect{stroke-dasharray:5 3}svg a:focus rect,svg a:hover rect{stroke-width:3.5}
.nodes{display:flex;flex-direction:column;gap:8px}
.node-findings{border-left:5px solid var(--c);background:var(--card);border-radius:6px;padding:6px 10px}
.node-findings:target{outline:2px solid var(--c)}
ul.f{list-style:none;margin:0;padding:0}li.f{padding:5px 0;border-top:1px solid var(--line)}
li.f:first-child{border-top:0}.rule{font-weight:700}.detail{margin:2px 0}.fix{margin:2px 0}
.st{font-size:11px;font-weight:700;padding:0 5px;border-radius:4px;border:1px solid currentColor}
.st-fixed{color:var(--ok)}.st-would-fix{color:var(--low)}.st-needs-person{color:var(--high)}.st-exempt{color:var(--exempt)}
details.words{margin-top:8px}details.words li{margin:2px 0}
ul.clean{columns:3 260px;padding-left:18px}
[hidden]{display:none!important}
@media print{form#filters{display:none}body{font-size:11px}.ws{break-inside:auto}.node-findings,li.f{break-inside:avoid}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}details.words{display:none}figure{overflow:visible}
.ws-body{grid-template-columns:1fr}}
"""

SCRIPT = """
(function(){
var form=document.getElementById('filters');if(!form)return;
var rows=document.querySelectorAll('li.f'),groups=document.querySelectorAll('.node-findings,.ws'),
shown=document.getElementById('shown');
function apply(){
var on={};form.querySelectorAll('input:checked').forEach(function(c){on[c.name+':'+c.value]=1;});
var seen={};
rows.forEach(function(r){var d=r.dataset,v=on['sev:'+d.sev]&&on['fam:'+d.fam]&&on['st:'+d.status];
r.hidden=!v;if(v)seen[d.finding]=1;});
groups.forEach(function(g){if(g.querySelector('li.f'))g.hidden=!g.querySelector('li.f:not([hidden])');});
shown.textContent=String(Object.keys(seen).length);}
form.addEventListener('change',apply);apply();
})();
"""


_SPECIAL = re.compile(r"[&<>\"']").search


def escape(text: str) -> str:
    """:func:`html.escape` (quotes included), skipped for the usual text that needs none."""
    return _escape(text) if _SPECIAL(text) else text


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


STYLE_HASH, SCRIPT_HASH = _hash(STYLE), _hash(SCRIPT)
CSP = (f"default-src 'none'; style-src {STYLE_HASH}; script-src {SCRIPT_HASH}; img-src 'none'; "
       "base-uri 'none'; form-action 'none'")
"""What the page may load: its own inline style and script, nothing else (also sent as a header
by ``GET /api/report``, with ``frame-ancestors 'none'``, which a ``<meta>`` cannot carry)."""


def family(rule_id: str) -> str:
    """``EXF-NSG-01`` -> ``NSG``: the rule family the filters offer."""
    parts = rule_id.split("-")
    return parts[1] if len(parts) >= 3 else rule_id


def _writes(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Write results wherever the scan put them: a live CLI scan's ``writes``, a sweep's or
    HTTP call's ``actions.writes``."""
    out: list[Mapping[str, Any]] = []
    for holder in (report, report.get("actions")):
        if isinstance(holder, Mapping):
            out += [w for w in holder.get("writes") or () if isinstance(w, Mapping)]
    return out


class _Outcomes:
    """What happened to each finding's fix, from the report's write results."""

    def __init__(self, report: Mapping[str, Any]) -> None:
        self.by: dict[tuple[str, str], Mapping[str, Any]] = {}
        for w in _writes(report):
            rid = w.get("resourceId")
            if isinstance(rid, str):
                for rule in w.get("rules") or ():
                    self.by[(ids.key(rid), str(rule))] = w
        actions = report.get("actions")
        blocked = actions.get("loopGuardBlocked") if isinstance(actions, Mapping) else None
        self.blocked = {ids.key(b) for b in blocked or () if isinstance(b, str)}

    def of(self, f: Mapping[str, Any], key: str) -> tuple[str, str]:
        """(status, a few words on why)."""
        if f.get("exempt"):
            ex = f.get("exemption") or {}
            return "exempt", f"exempt until {ex.get('until', '?')}: {ex.get('reason', '')}"
        w = self.by.get((key, str(f.get("ruleId"))))
        status = w.get("status") if w is not None else None
        if status == "applied":
            return "fixed", "fixed by ExfilGuard"
        if status == "not-needed":
            return "fixed", "already fixed when ExfilGuard went to write"
        if status in ("failed", "conflict"):
            return "needs-person", f"automatic fix {status}: {w.get('message') or ''}".rstrip(": ")  # type: ignore[union-attr]
        if key in self.blocked:
            return "needs-person", "automatic fixing paused by the loop guard"
        if (f.get("fix") or {}).get("mode") == "auto":
            return "would-fix", ("dry run: not sent" if status == "dry-run"
                                 else "ExfilGuard fixes this in remediate mode")
        return "needs-person", "a person must act"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


class _Page:
    """The findings of the report, indexed for the drawings, and the page being written."""

    def __init__(self, report: Mapping[str, Any]) -> None:
        self.report = report
        self.findings: list[Mapping[str, Any]] = [f for f in report.get("findings") or () if isinstance(f, Mapping)]
        outcomes = _Outcomes(report)
        self.by_key: dict[str, list[int]] = {}
        self.status: list[tuple[str, str]] = []
        self.keys: list[str] = []
        for i, f in enumerate(self.findings):
            k = ids.key(str(f.get("resourceId") or ""))
            self.keys.append(k)
            self.by_key.setdefault(k, []).append(i)
            self.status.append(outcomes.of(f, k))
        self.under_ws: dict[str, list[str]] = {}
        for k in self.by_key:
            ws = _workspace_key(k)
            if ws is not None and ws != k:
                self.under_ws.setdefault(ws, []).append(k)
        self.placed: set[int] = set()
        self.rows: dict[int, str] = {}

    def worst(self, indexes: Iterable[int]) -> str:
        best, exempt = 0, False
        for i in indexes:
            f = self.findings[i]
            if f.get("exempt"):
                exempt = True
                continue
            best = max(best, _RANK.get(str(f.get("severity")), 1))
        if best:
            return SEVERITIES[4 - best]
        return "exempt" if exempt else "ok"

    def row(self, i: int) -> str:
        """One finding as a list item (made once, however many drawings show it)."""
        got = self.rows.get(i)
        if got is not None:
            return got
        f = self.findings[i]
        sev = str(f.get("severity") or "low")
        sev = sev if sev in _RANK else "low"
        rule = str(f.get("ruleId") or "")
        status, why = self.status[i]
        fix = f.get("fix") or {}
        got = (f'<li class="f sev-{sev}" data-finding="{i}" data-sev="{sev}" data-fam="{escape(family(rule))}" '
               f'data-status="{status}"><span class="badge">{sev.upper()}</span> <span class="rule">{escape(rule)}'
               f'</span> {escape(str(f.get("title") or ""))}<br><code class="rid">'
               f'{escape(str(f.get("resourceId") or ""))}</code><p class="detail">{escape(str(f.get("detail") or ""))}'
               f'</p><p class="fix"><span class="st st-{status}">{STATUS_WORDS[status]}</span> '
               f'<b>Fix</b> ({escape(str(fix.get("mode") or ""))}): {escape(str(fix.get("summary") or ""))}'
               f' <span class="muted">— {escape(why)}</span></p></li>')
        self.rows[i] = got
        return got


def render(report: Mapping[str, Any], paths: NetworkPaths | None = None, *, title: str = "ExfilGuard report",
           source: str = "", generated: datetime | None = None) -> str:
    """The whole page. ``paths`` None draws nothing (every finding is still listed)."""
    page = _Page(report)
    generated = generated or datetime.now(UTC)
    out: list[str] = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<title>{escape(title)}</title><style>{STYLE}</style></head><body>'
        f'<header><h1>{escape(title)}</h1><p class="meta">{escape(_meta(report, source, generated))}</p></header>'
        '<main>']
    out.append(_summary(page))
    out.append(_filters(page))
    drawn: list[tuple[WorkspacePath, list[int]]] = []
    clean: list[tuple[WorkspacePath, list[int]]] = []
    for p in (paths.workspaces if paths is not None else ()):
        mine = [] if p.summarised else _indexes_of(page, p)
        (drawn if mine else clean).append((p, mine))
    drawn.sort(key=lambda pm: (-_RANK.get(page.worst(pm[1]), 0), pm[0].name.lower()))
    out.append(f'<h2 id="workspaces">Workspaces: {len(drawn)} with findings, {len(clean)} without</h2>')
    for n, (p, mine) in enumerate(drawn):
        out.append(_workspace(page, n, p, mine))
    if clean:
        out.append(_clean(clean))
    rest = [i for i in range(len(page.findings)) if i not in page.placed]
    if rest:
        out.append('<section class="ws" id="other" aria-labelledby="other-h"><header><h3 id="other-h">'
                   f'Findings not on a drawn path ({len(rest)})</h3></header><div class="node-findings sev-'
                   f'{page.worst(rest)}"><ul class="f">{"".join(page.row(i) for i in rest)}</ul></div></section>')
    out.append(_notices(report))
    out.append(_writes_table(report))
    out.append(f'</main><footer><p class="muted">ExfilGuard · {len(page.findings)} finding(s) · this page loads '
               f'nothing from the network</p></footer><script>{SCRIPT}</script></body></html>\n')
    return "".join(out)


def _meta(report: Mapping[str, Any], source: str, generated: datetime) -> str:
    parts = []
    live = report.get("live") if isinstance(report.get("live"), Mapping) else None
    sweep = report.get("sweep") if isinstance(report.get("sweep"), Mapping) else None
    if live is not None:
        parts.append(f"live scan of subscription {live.get('subscription', '')}")
    elif sweep is not None:
        parts.append(f"sweep {sweep.get('id', '')} ({sweep.get('trigger', '')})")
    elif source:
        parts.append(f"snapshot {source}")
    mode = report.get("mode") or (live or {}).get("mode")
    parts.append(f"mode: {mode}" if mode else "nothing written")
    summary = report.get("summary") or {}
    parts.append(f"{summary.get('resources', 0)} resources evaluated")
    if report.get("incomplete"):
        parts.append("INCOMPLETE: part of the subscription could not be read")
    parts.append(f"generated {generated.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    return " · ".join(parts)


def _summary(page: _Page) -> str:
    by_sev = {s: 0 for s in SEVERITIES}
    by_status = {s: 0 for s in STATUSES}
    for i, f in enumerate(page.findings):
        status = page.status[i][0]
        by_status[status] += 1
        if status != "exempt":
            sev = str(f.get("severity"))
            by_sev[sev if sev in by_sev else "low"] += 1
    out = ['<section id="summary" aria-labelledby="summary-h"><h2 id="summary-h">Summary</h2>'
           '<div class="cards" aria-label="Open findings by severity">']
    out += [f'<div class="card sev-{s}"><span class="n">{by_sev[s]}</span>{s}</div>' for s in SEVERITIES]
    out.append('</div><div class="cards" aria-label="What happens to each finding">')
    tone = {"fixed": "ok", "would-fix": "low", "needs-person": "high", "exempt": "exempt"}
    out += [f'<div class="card sev-{tone[s]}" data-count="{s}"><span class="n">{by_status[s]}</span>'
            f'{STATUS_WORDS[s]}</div>' for s in STATUSES]
    out.append("</div>")
    exempt = [i for i in range(len(page.findings)) if page.status[i][0] == "exempt"]
    expired = [n for n in page.report.get("notices") or () if isinstance(n, Mapping)
               and n.get("kind") in _IGNORED_EXEMPTION]
    out.append(f"<h3>Exemptions ({len(exempt)} active, {len(expired)} expired, invalid or unreadable)</h3>")
    if exempt or expired:
        out.append("<table><thead><tr><th>Rule</th><th>Resource</th><th>Until</th><th>Reason</th></tr></thead><tbody>")
        for i in exempt:
            f = page.findings[i]
            ex = f.get("exemption") or {}
            out.append(f'<tr><td>{escape(str(f.get("ruleId")))}</td><td><code>{escape(str(f.get("resourceId")))}'
                       f'</code></td><td>{escape(str(ex.get("until", "")))}</td>'
                       f'<td>{escape(str(ex.get("reason", "")))}</td></tr>')
        for n in expired:
            out.append(f'<tr><td>—</td><td><code>{escape(str(n.get("resourceId", "")))}</code></td>'
                       f'<td>{_IGNORED_EXEMPTION[str(n.get("kind"))]}</td>'
                       f'<td>{escape(str(n.get("message", "")))}</td></tr>')
        out.append("</tbody></table>")
    else:
        out.append('<p class="muted">No exemption tags.</p>')
    out.append("</section>")
    return "".join(out)


def _filters(page: _Page) -> str:
    fams = sorted({family(str(f.get("ruleId") or "")) for f in page.findings})
    out = ['<form id="filters" aria-label="Filter findings"><fieldset><legend>Severity</legend>']
    out += [f'<label><input type="checkbox" name="sev" value="{s}" checked> {s}</label>' for s in SEVERITIES]
    out.append("</fieldset><fieldset><legend>Rule family</legend>")
    out += [f'<label><input type="checkbox" name="fam" value="{escape(f)}" checked> {escape(f)}</label>' for f in fams]
    out.append("</fieldset><fieldset><legend>Outcome</legend>")
    out += [f'<label><input type="checkbox" name="st" value="{s}" checked> {STATUS_WORDS[s]}</label>'
            for s in STATUSES]
    out.append(f'</fieldset><p role="status">Showing <output id="shown">{len(page.findings)}</output> of '
               f"{len(page.findings)} findings</p></form>")
    return "".join(out)


def _indexes_of(page: _Page, p: WorkspacePath) -> list[int]:
    """Findings about the workspace's drawn nodes and about anything under the workspace ID
    (environment versions, computes): the findings this workspace's section lists."""
    mine: list[int] = []
    drawn = set()
    for n in p.nodes:
        drawn.add(n.key)
        mine += page.by_key.get(n.key, ())
    for k in page.under_ws.get(p.key, ()):
        if k not in drawn:
            mine += page.by_key[k]
    return mine


def _layout(p: WorkspacePath) -> tuple[dict[str, tuple[int, int]], list[tuple[int, int]], int, int]:
    """Node positions, column (index, x), width and height: present columns only.

    The first column is stacked from the top; every later node sits level with the middle of
    the nodes that lead to it (a subnet beside its computes), pushed down only as far as the
    node above it in its column needs, so edges run as flat as the order allows."""
    columns = sorted({n.column for n in p.nodes})
    x_of = {c: PAD + i * (NODE_W + COL_GAP) for i, c in enumerate(columns)}
    per: dict[int, list[Node]] = {c: [] for c in columns}
    for n in p.nodes:
        per[n.column].append(n)
    column_of = {n.key: n.column for n in p.nodes}
    preds: dict[str, list[str]] = {}
    for a, b in p.edges:
        if a in column_of and b in column_of and column_of[a] < column_of[b]:
            preds.setdefault(b, []).append(a)
    step = NODE_H + ROW_GAP
    pos: dict[str, tuple[int, int]] = {}
    bottom = HEAD
    for c in columns:
        x, y = x_of[c], HEAD - step
        for n in per[c]:
            ys = [pos[a][1] for a in preds.get(n.key, ()) if a in pos]
            want = (min(ys) + max(ys)) // 2 if ys else y + step
            y = max(want, y + step)
            pos[n.key] = (x, y)
        bottom = max(bottom, y + NODE_H)
    width = PAD * 2 + len(columns) * NODE_W + max(0, len(columns) - 1) * COL_GAP
    return pos, [(c, x_of[c]) for c in columns], width, bottom + PAD


def _workspace(page: _Page, n: int, p: WorkspacePath, mine: list[int]) -> str:
    page.placed.update(mine)
    node_sev = {nd.key: page.worst(page.by_key.get(nd.key, ())) for nd in p.nodes}
    worst = page.worst(mine)
    pos, cols, width, height = _layout(p)
    wid = f"w{n}"
    counts = {k: sum(1 for _ in page.by_key.get(k, ())) for k in node_sev}
    out = [f'<section class="ws sev-{worst}" id="{wid}" data-workspace="{escape(p.resource_id)}" '
           f'aria-labelledby="{wid}-h"><header><h3 id="{wid}-h">{escape(p.name)}</h3>'
           f'<span class="badge">{worst.upper()}</span><span class="muted">{escape(p.resource_group)}'
           f'{" · " + escape(p.location) if p.location else ""}{" · not in the scan" if p.missing else ""} · '
           f'{len(mine)} finding(s)</span></header><div class="ws-body"><figure>'
           f'<svg class="net" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{wid}-t" '
           f'aria-describedby="{wid}-words"><title id="{wid}-t">Network path of workspace {escape(p.name)}: '
           f'{_tally(p)}</title>']
    for c, x in cols:
        out.append(f'<text class="colh" x="{x + 2}" y="14">{COLUMN_TITLES[c]}</text>')
    for a, b in p.edges:
        if a in pos and b in pos:
            (x1, y1), (x2, y2) = pos[a], pos[b]
            x1, y1, y2 = x1 + NODE_W, y1 + NODE_H // 2, y2 + NODE_H // 2
            mid = (x1 + x2) // 2
            out.append(f'<path class="e" d="M{x1} {y1}C{mid} {y1} {mid} {y2} {x2} {y2}"/>')
    for j, nd in enumerate(p.nodes):
        x, y = pos[nd.key]
        sev, cnt = node_sev[nd.key], counts[nd.key]
        label = _clip(nd.label, LABEL_CHARS - (3 if cnt else 0))
        g = (f'<g class="nd sev-{sev}{" missing" if nd.missing else ""}" data-node="{escape(nd.key)}">'
             f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
             f'<text x="{x + 8}" y="{y + 14}">{escape(label)}</text>'
             f'<text class="sub" x="{x + 8}" y="{y + 27}">{escape(_clip(nd.note, NOTE_CHARS))}</text>'
             + (f'<text class="cnt" x="{x + NODE_W - 7}" y="{y + 14}" text-anchor="end">{cnt}</text>'
                if cnt else "")
             + f"<title>{escape(_node_words(nd, sev, cnt))}</title></g>")
        out.append(f'<a href="#{wid}-n{j}">{g}</a>' if cnt else g)
    out.append('</svg></figure><div class="nodes">')
    listed: set[int] = set()
    for j, nd in enumerate(p.nodes):
        idx = page.by_key.get(nd.key, ())
        if not idx:
            continue
        listed.update(idx)
        out.append(f'<div class="node-findings sev-{node_sev[nd.key]}" id="{wid}-n{j}"><h4>'
                   f'{KIND_WORDS.get(nd.kind, nd.kind)} {escape(nd.label)}</h4><ul class="f">'
                   f'{"".join(page.row(i) for i in idx)}</ul></div>')
    others = [i for i in mine if i not in listed]
    if others:
        out.append(f'<div class="node-findings sev-{page.worst(others)}"><h4>Elsewhere in this workspace '
                   f'(not drawn)</h4><ul class="f">{"".join(page.row(i) for i in others)}</ul></div>')
    out.append(f'</div></div><details class="words" id="{wid}-words"><summary>The path in words</summary><ul>')
    words = {nd.key: f"{KIND_WORDS.get(nd.kind, nd.kind)} {nd.label}" for nd in p.nodes}
    nexts: dict[str, list[str]] = {}
    for a, b in p.edges:
        nexts.setdefault(a, []).append(words.get(b, b))
    for nd in p.nodes:
        to = nexts.get(nd.key)
        out.append(f"<li>{escape(_node_words(nd, node_sev[nd.key], counts[nd.key]))}"
                   f"{' → ' + escape(', '.join(to)) if to else ''}</li>")
    out.append("</ul></details></section>")
    return "".join(out)


def _tally(p: WorkspacePath) -> str:
    kinds: dict[str, int] = {}
    for nd in p.nodes:
        kinds[nd.kind] = kinds.get(nd.kind, 0) + 1
    return ", ".join(f"{v} {KIND_WORDS.get(k, k).lower()}{'s' if v != 1 else ''}" for k, v in kinds.items())


def _node_words(nd: Node, sev: str, count: int) -> str:
    state = ("no findings" if not count else f"{count} finding{'s' if count != 1 else ''}, worst {sev}"
             if sev not in ("ok", "exempt") else f"{count} exempt finding{'s' if count != 1 else ''}")
    extra = f" ({nd.note})" if nd.note else ""
    missing = ", not in the scan" if nd.missing else ""
    return f"{KIND_WORDS.get(nd.kind, nd.kind)} {nd.label}{extra}{missing}: {state}"


def _clean(clean: Sequence[tuple[WorkspacePath, list[int]]]) -> str:
    shown = clean[:CLEAN_LISTED]
    more = len(clean) - len(shown)
    items = "".join(f"<li>{escape(p.name)} <span class=\"muted\">{escape(p.resource_group)} · "
                    f"{p.computes} compute(s)</span></li>" for p, _ in shown)
    return (f'<section id="clean" aria-labelledby="clean-h"><h3 id="clean-h">Workspaces with no findings '
            f'({len(clean)})</h3><ul class="clean">{items}</ul>'
            + (f'<p class="muted">and {more} more, not drawn: nothing to show on them.</p>' if more else "")
            + "</section>")


# Exemption tags that exempt nothing, by notice kind: what the Until column says of them.
_IGNORED_EXEMPTION = {"expired-exemption": "expired", "invalid-exemption": "too far ahead",
                      "malformed-exemption": "unreadable"}


def _notices(report: Mapping[str, Any]) -> str:
    notices = [n for n in report.get("notices") or () if isinstance(n, Mapping)]
    if not notices:
        return ""
    rows = "".join(f'<tr><td>{escape(str(n.get("kind", "")))}</td><td><code>{escape(str(n.get("resourceId", "")))}'
                   f'</code></td><td>{escape(str(n.get("message", "")))}</td></tr>' for n in notices)
    return (f'<h2 id="notices">Notices ({len(notices)})</h2><table><thead><tr><th>Kind</th><th>Resource</th>'
            f"<th>Message</th></tr></thead><tbody>{rows}</tbody></table>")


def _writes_table(report: Mapping[str, Any]) -> str:
    writes = _writes(report)
    if not writes:
        return ""
    rows = "".join(f'<tr><td>{escape(str(w.get("status", "")))}</td><td><code>{escape(str(w.get("resourceId", "")))}'
                   f'</code></td><td>{escape(", ".join(str(r) for r in w.get("rules") or ()))}</td>'
                   f'<td>{escape(str(w.get("message") or ""))}</td></tr>' for w in writes)
    return (f'<h2 id="writes">What ExfilGuard wrote or would write ({len(writes)})</h2><table><thead><tr>'
            f"<th>Status</th><th>Resource</th><th>Rules</th><th>Message</th></tr></thead><tbody>{rows}</tbody></table>")
