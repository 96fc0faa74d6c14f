"""Report formats: the JSON contract, SARIF 2.1.0 for code scanning, and a rich table."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from exfilguard.core import ids
from exfilguard.core.engine import Evaluation, summary
from exfilguard.core.findings import Severity
from exfilguard.core.rules import RULES

SCHEMA_VERSION = 1


def to_json(evaluation: Evaluation, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schemaVersion": SCHEMA_VERSION,
        "findings": [f.to_json() for f in evaluation.findings],
        "summary": summary(evaluation),
    }
    if evaluation.notices:
        out["notices"] = [n.to_json() for n in evaluation.notices]
    if evaluation.ignored:
        out["ignoredTypes"] = dict(sorted(evaluation.ignored.items()))
    if extra:
        out.update(extra)
    return out


_SARIF_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
                Severity.LOW: "note"}
_SECURITY_SEVERITY = {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5", Severity.LOW: "3.0"}


def to_sarif(evaluation: Evaluation, artifact: str = "subscription", *,
             locate: Callable[[str], dict[str, Any]] | None = None,
             uri_base_ids: dict[str, Any] | None = None) -> dict[str, Any]:
    """SARIF 2.1.0 as GitHub code scanning accepts it: rules carry help text and a
    ``security-severity``; exempt findings are suppressed results.

    ``locate`` gives each result's physicalLocation (a resolvable URI and the resource's
    line, :mod:`exfilguard.render.sarif_places`); without it every result points at ``artifact``.
    ``uri_base_ids`` declares the base that relative URIs are resolved against."""
    from exfilguard import __version__

    rules = []
    index = {}
    for i, rule in enumerate(RULES.values()):
        index[rule.id] = i
        rules.append({
            "id": rule.id,
            "name": "".join(w.capitalize() for w in rule.title.replace("/", " ").split()),
            "shortDescription": {"text": rule.title},
            "fullDescription": {"text": rule.rationale},
            "help": {"text": f"{rule.rationale}\n\nFix: {rule.fix}\n\nGuidance: {rule.guidance}",
                     "markdown": f"{rule.rationale}\n\n**Fix:** {rule.fix}\n\n[Microsoft guidance]({rule.guidance})"},
            "helpUri": rule.guidance,
            "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
            "properties": {"security-severity": _SECURITY_SEVERITY[rule.severity],
                           "tags": ["security", "azure", "data-exfiltration"]},
        })
    results = []
    for f in evaluation.findings:
        result: dict[str, Any] = {
            "ruleId": f.rule_id,
            "ruleIndex": index[f.rule_id],
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f"{f.title}: {f.detail}. Fix ({f.fix_mode}): {f.fix_summary}"},
            "locations": [{
                "physicalLocation": locate(f.resource_id) if locate else {"artifactLocation": {"uri": artifact}},
                "logicalLocations": [{"fullyQualifiedName": f.resource_id, "kind": "resource"}],
            }],
            "partialFingerprints": {"exfilguard/v1": f"{f.rule_id}:{ids.key(f.resource_id)}"},
        }
        if f.exempt and f.exemption is not None:
            result["suppressions"] = [{"kind": "external", "status": "accepted",
                                       "justification": f"{f.exemption.reason} (until {f.exemption.until})"}]
        results.append(result)
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "ExfilGuard", "version": __version__,
                            "informationUri": "https://learn.microsoft.com/azure/machine-learning/"
                                              "how-to-prevent-data-loss-exfiltration",
                            "rules": rules}},
        "results": results,
    }
    if uri_base_ids:
        run["originalUriBaseIds"] = uri_base_ids
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    }


def write_json(doc: dict[str, Any], out: TextIO) -> None:
    json.dump(doc, out, indent=2)
    out.write("\n")


_STYLE = {Severity.CRITICAL: "bold white on red", Severity.HIGH: "bold red", Severity.MEDIUM: "yellow",
          Severity.LOW: "cyan"}


def _where(resource_id: str) -> tuple[str, str]:
    parsed = ids.try_parse(resource_id)
    if parsed is None:
        return resource_id, "-"
    last = parsed.types[-1].lower() if parsed.types else ""
    name = "/".join(parsed.names[-2:]) if last in ("subnets", "versions") else parsed.name
    return name, parsed.resource_group or "-"


def write_table(evaluation: Evaluation, out: TextIO, notices: Iterable = ()) -> None:
    """Findings grouped by severity, one line each, and a summary line."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=out, width=max(100, Console(file=out).width), highlight=False)
    for sev in Severity:
        group = [f for f in evaluation.findings if f.severity is sev]
        if not group:
            continue
        table = Table(title=f"{sev.value.upper()} ({len(group)})", title_style=_STYLE[sev], title_justify="left",
                      show_lines=False, expand=True)
        table.add_column("Rule", no_wrap=True)
        table.add_column("Resource")
        table.add_column("Group")
        table.add_column("What is wrong", ratio=3)
        table.add_column("Fix", ratio=2)
        for f in group:
            name, rg = _where(f.resource_id)
            fix = f"[{f.fix_mode}] {f.fix_summary}"
            if f.exempt and f.exemption:
                fix = f"exempt until {f.exemption.until} ({f.exemption.reason})"
            table.add_row(f.rule_id, escape(name), escape(rg), escape(f.detail), escape(fix),
                          style="dim" if f.exempt else None)
        console.print(table)
    for n in (*evaluation.notices, *notices):
        console.print(f"[dim]notice ({n.kind}): {escape(n.message)}[/dim]")
    s = summary(evaluation)
    parts = ", ".join(f"{v} {k}" for k, v in s["bySeverity"].items()) or "none"
    console.print(f"[bold]{s['findings']} finding(s)[/bold] ({parts}); {s['exempt']} exempt; "
                  f"{s['resources']} resources evaluated")
