"""Evaluate a picture against the baseline and plan the writes: the pure middle of the product.

Every entrance (snapshot scan, live scan, event, HTTP re-check, timer) ends here with the
same picture type, so they all reach the same decisions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

from exfilguard.core import egress, exemptions, ids
from exfilguard.core.config import Config, Mode
from exfilguard.core.findings import Finding, Notice, Severity
from exfilguard.core.fixes import PlannedChange
from exfilguard.core.picture import Picture
from exfilguard.core.rules import FAMILIES, RULES, Context
from exfilguard.core.rules import firewall as fw_rules
from exfilguard.core.rules import nsg as nsg_rules
from exfilguard.core.rules import sep as sep_rules


@dataclass(frozen=True, slots=True)
class Evaluation:
    findings: tuple[Finding, ...]
    notices: tuple[Notice, ...]
    resources: int
    ignored: dict[str, int] = field(default_factory=dict)

    @property
    def open_findings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.exempt)

    def exit_code(self) -> int:
        return 1 if self.open_findings else 0


def _sort_key(f: Finding) -> tuple:
    return (-f.severity.rank, f.rule_id, f.resource_id.lower())


def today_utc() -> date:
    return datetime.now(UTC).date()


def evaluate(picture: Picture, config: Config, today: date | None = None,
             only: Iterable[str] | None = None) -> Evaluation:
    """All findings for the picture. ``only`` (resource IDs) limits the findings kept to
    those resources, for event handling where the picture holds neighbours too."""
    ctx = Context(picture, config)
    found: list[Finding] = []
    keep = {ids.key(i) for i in only} if only is not None else None
    # An event's picture holds neighbours too: families whose findings could not be about the
    # resources kept are not run at all (a security rule event runs the NSG family only).
    ran = FAMILIES if keep is None else _families_for(frozenset([ids.type_of(k) for k in keep]))
    for family in ran:
        found.extend(family.evaluate(ctx))
    if keep is not None:
        found = [f for f in found if ids.key(f.resource_id) in keep]
    notices = list(picture.notices)
    notices.extend(_absent_references(picture, nsgs=nsg_rules in ran, seps=sep_rules in ran))
    if fw_rules in ran:
        notices.extend(egress.absent_notices(picture))
    found, ex_notices = _apply_exemptions(picture, found, today, config)
    notices.extend(ex_notices)
    found.sort(key=_sort_key)
    return Evaluation(tuple(found), tuple(notices), picture.resource_count(), dict(picture.ignored))


def _families_for(types: frozenset[str | None]) -> tuple:
    """The rule families whose findings can be about resources of ``types``."""
    return tuple(family for family in FAMILIES if not types.isdisjoint(family.TARGETS))


def _absent_references(picture: Picture, *, nsgs: bool = True, seps: bool = True) -> list[Notice]:
    """Notices for what guarded subnets refer to but the picture lacks. An NSG or policy is
    missed only where its rules ran (``nsgs``, ``seps``): an event about an NSG reads no
    policy, because no policy rule is evaluated for it."""
    out = []
    for g in picture.guarded_subnets.values():
        if g.subnet is None:
            out.append(Notice("absent", g.id, "subnet used by compute is not in the picture; its rules were "
                              "not evaluated"))
            continue
        s = g.subnet
        if nsgs and s.nsg_id and ids.key(s.nsg_id) not in picture.nsgs:
            out.append(Notice("absent", s.nsg_id, f"NSG attached to {s.name} is not in the picture"))
        for sep in s.sep_ids if seps else ():
            if ids.key(sep) not in picture.seps:
                out.append(Notice("absent", sep, f"service endpoint policy attached to {s.name} is not in the "
                                  "picture"))
    return out


_KNOWN_RULES = frozenset(RULES)


_NOTICE_KIND = {"malformed": "malformed-exemption", "expired": "expired-exemption",
                "too-long": "invalid-exemption"}


def _apply_exemptions(picture: Picture, found: list[Finding], today: date | None,
                      config: Config) -> tuple[list[Finding], list[Notice]]:
    """``today`` None: the UTC date, looked up only when an exemption tag is read."""
    notices: list[Notice] = []
    if not found:
        return found, notices
    cache: dict[str, object] = {}
    known = _KNOWN_RULES
    out = []
    for f in found:
        k = ids.key(f.resource_id)
        if k not in cache:
            cache[k] = None
            res = picture.get(f.resource_id)
            if res is not None:
                source = picture.exemption_source(res)
                value = exemptions.tag_value(source.tags)
                if value is not None:
                    if today is None:
                        today = today_utc()
                    verdict = exemptions.judge(value, today, known_rules=known,
                                               max_days=config.max_exemption_days)
                    if verdict.in_force:
                        cache[k] = verdict.exemption
                    else:
                        notices.append(Notice(_NOTICE_KIND[verdict.kind], source.id,
                                              f"tag {exemptions.TAG} on {source.name} {verdict.message}"))
        ex = cache[k]
        if ex is not None and f.rule_id in ex.rules:  # type: ignore[attr-defined]
            out.append(replace(f, exempt=True, exemption=ex))  # type: ignore[arg-type]
        else:
            out.append(f)
    return out, notices


def should_apply(f: Finding, config: Config, mode: Mode | None = None) -> bool:
    """A finding is written only when fixable, not exempt, and its rule runs in remediate."""
    effective = mode or config.mode_for(f.rule_id)
    return f.fix_mode == "auto" and not f.exempt and bool(f.edits) and effective == "remediate"


def plan(findings: Iterable[Finding], config: Config, mode: Mode | None = None) -> list[PlannedChange]:
    """Merge the edits of all applicable findings into one change per resource.

    ``mode`` overrides the configured mode for every rule (the CLI's ``--remediate``);
    per-rule overrides still win when they say ``audit``.
    """
    by_target: dict[str, list[Finding]] = {}
    order: list[str] = []
    for f in findings:
        rule_mode = config.rule_modes.get(f.rule_id) or mode or config.mode
        if not should_apply(f, config, rule_mode):
            continue
        k = ids.key(f.fix_target)
        if k not in by_target:
            by_target[k] = []
            order.append(k)
        by_target[k].append(f)
    changes = []
    for k in order:
        fs = by_target[k]
        changes.append(PlannedChange(target_id=fs[0].fix_target, rule_ids=tuple(f.rule_id for f in fs),
                                     summaries=tuple(f.fix_summary for f in fs),
                                     edits=tuple(e for f in fs for e in f.edits)))
    return changes


def summary(evaluation: Evaluation) -> dict:
    by_sev: dict[str, int] = {}
    for sev in Severity:
        n = sum(1 for f in evaluation.open_findings if f.severity is sev)
        if n:
            by_sev[sev.value] = n
    return {"resources": evaluation.resources, "findings": len(evaluation.open_findings), "bySeverity": by_sev,
            "exempt": sum(1 for f in evaluation.findings if f.exempt)}
