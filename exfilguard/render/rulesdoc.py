"""docs/rules.md, rendered from the rule catalog (`make docs`; a test fails when it is stale).

Generated rather than written so the page, `exfilguard rules`, SARIF and the alerts cannot
disagree about a rule.
"""

from __future__ import annotations

from exfilguard.core.catalog import ARTICLES, CATALOG, FAMILIES, Rule
from exfilguard.core.findings import FixKind
from exfilguard.render.policy_export import alias_data

_WHERE = {"event": "Event Grid events", "sweep": "the daily sweep", "scan": "`exfilguard scan`",
          "what-if": "`scan --what-if` (before a deployment)"}
_POLICY = {"full": "Azure Policy export: same decision", "partial": "Azure Policy export: part of the rule",
           None: "Azure Policy: not exported"}

_FIX_WORDS = {
    FixKind.AUTO: "fixed automatically in `remediate` mode",
    FixKind.CONFIGURED: "fixed automatically in `remediate` mode when configuration names what to attach",
    FixKind.ALERT: "alert only: never changed automatically",
}

_HEAD = """# Rules

<!-- Generated from exfilguard/core/catalog.py by `make docs`; do not edit by hand. -->

Every rule ExfilGuard checks, by its stable ID. Reports, alerts, exemptions and SARIF name
rules by these IDs; IDs are never renumbered. How resources come into scope (guarded subnets,
NSGs, service endpoint policies, route tables, firewalls), how NSG rules are decided, which
outbound flows Azure Machine Learning needs and how exemptions work is in
[semantics.md](semantics.md).

Severity: critical > high > medium > low. The global mode (`audit` by default, or
`remediate`) and per-rule overrides decide whether a fixable finding is written or only
reported; `fix.mode` in a report says `auto` when ExfilGuard can fix the finding under the
current configuration.
"""


def _anchor(rule: Rule) -> str:
    return rule.id.lower()


def _enforced(rule: Rule) -> str:
    row = alias_data()["enforcement"][rule.id]
    where = ", ".join(_WHERE[w] for w in row["exfilguard"])
    return f"ExfilGuard: {where}. {_POLICY[row['azurePolicy']]} ({row['why']}; see [prevention.md](prevention.md))."


def render() -> str:
    """The whole page, deterministic (catalog order)."""
    out = [_HEAD, "| ID | Severity | Title | Fix |", "|---|---|---|---|"]
    out += [f"| [{r.id}](#{_anchor(r)}) | {r.severity.value} | {r.title} | {r.fix_kind.value} |" for r in CATALOG]
    family = ""
    for r in CATALOG:
        if r.family != family:
            family = r.family
            out += ["", f"## {family}"]
        out += ["", f"### {r.id}", "", f"**{r.title}** ({r.severity.value})", "",
                f"- **Checks:** {r.checks}",
                f"- **Fix:** {r.fix} ({_FIX_WORDS[r.fix_kind]}).",
                f"- **Why:** {r.rationale}"]
        if r.manual_step:
            out.append(f"- **What a person does:** {r.manual_step}")
        out.append(f"- **Source:** [{ARTICLES[r.guidance]}]({r.guidance})")
        out.append(f"- **Where enforced:** {_enforced(r)}")
    out += ["", "## Families", ""]
    out += [f"- `EXF-{prefix}-*`: {name}" for prefix, name in FAMILIES.items()
            if any(r.id.startswith(f"EXF-{prefix}-") for r in CATALOG)]
    return "\n".join(out) + "\n"
