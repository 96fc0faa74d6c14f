"""The words of a message, once, before they become a card, an email or a preview page.

Every channel renders the same :class:`Content`, which is how the email's HTML and text
parts carry "the same content as the card" without three hand-kept templates drifting.
Content is also where long lists are cut ("and N more"): :meth:`Content.limited` keeps the
first *n* list lines, and each renderer picks the largest *n* its size budget allows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

from exfilguard.alerts import guidance
from exfilguard.alerts.message import (
    ActionKind,
    ActiveExemption,
    Alert,
    Escalation,
    ExemptionChange,
    ResolvedNotice,
    ResourceFacts,
    TestAlert,
    format_time,
)
from exfilguard.core.actor import Actor
from exfilguard.core.findings import Severity

# A tone is a colour family every renderer knows: Adaptive Card colours / container styles,
# and the HTML palette in mail.py.
TONE_BY_SEVERITY = {
    Severity.CRITICAL: "attention",
    Severity.HIGH: "attention",
    Severity.MEDIUM: "warning",
    Severity.LOW: "accent",
}
MAX_TEXT = 1500  # one free-text value (a finding detail, a before/after) beyond this is cut


def clip(text: str, limit: int = MAX_TEXT) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Link:
    text: str
    url: str


@dataclass(frozen=True, slots=True)
class Fact:
    label: str
    value: str
    url: str | None = None
    mono: bool = False


@dataclass(frozen=True, slots=True)
class Line:
    """A list line: an emphasised lead (a rule ID) and the rest."""

    lead: str
    text: str = ""
    url: str | None = None
    tone: str | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """A resource inside a digest's severity section, with its findings as lines."""

    title: str
    url: str | None
    subtitle: str
    lines: tuple[Line, ...]
    more: int = 0  # lines cut by :meth:`Content.limited`


@dataclass(frozen=True, slots=True)
class Section:
    heading: str
    text: str = ""
    lead: str = ""  # shown emphasised before ``text`` (all strings here are plain text, never markup)
    facts: tuple[Fact, ...] = ()
    lines: tuple[Line, ...] = ()
    code: tuple[str, ...] = ()
    groups: tuple[Group, ...] = ()
    tone: str | None = None
    more: int = 0  # lines (or group lines) cut by :meth:`Content.limited`
    more_label: str = "more"

    def line_count(self) -> int:
        return len(self.lines) + sum(len(g.lines) for g in self.groups)


@dataclass(frozen=True, slots=True)
class Content:
    kind: str                  # alert | digest | escalation | exemption | resolved | test
    badge: str                 # the severity word, or ESCALATION / RESOLVED / TEST
    tone: str
    title: str
    subject: str               # the email subject
    summary: str = ""
    title_url: str | None = None
    sections: tuple[Section, ...] = ()
    links: tuple[Link, ...] = ()
    keys: tuple[str, ...] = ()  # dedup keys of the findings this message covers
    severity: Severity | None = None
    cut: int = field(default=0)   # total lines cut

    def line_count(self) -> int:
        return sum(s.line_count() for s in self.sections)

    def limited(self, max_lines: int) -> Content:
        """The same message keeping only the first ``max_lines`` list lines, in order; each cut
        place says how many it lost, so a reader knows the list goes on."""
        budget = max(0, max_lines)
        total_cut = 0
        sections = []
        for s in self.sections:
            keep_lines = s.lines[:budget]
            budget -= len(keep_lines)
            section_more = len(s.lines) - len(keep_lines)   # lines and whole groups lost
            groups = []
            for g in s.groups:
                if budget <= 0:
                    section_more += len(g.lines)
                    continue
                kept = g.lines[:budget]
                budget -= len(kept)
                groups.append(replace(g, lines=kept, more=len(g.lines) - len(kept)))
            total_cut += section_more + sum(g.more for g in groups)
            sections.append(replace(s, lines=keep_lines, groups=tuple(groups), more=section_more))
        return replace(self, sections=tuple(sections), cut=total_cut)


def _severity_badge(sev: Severity) -> str:
    return sev.value.upper()


def _resource_facts(r: ResourceFacts) -> tuple[Fact, ...]:
    facts = [
        Fact("Name", r.name, url=r.portal_url),
        Fact("Type", f"{r.type_label} ({r.type})" if r.type and r.type_label != r.type else (r.type or "unknown")),
        Fact("Resource group", r.resource_group or "—"),
        Fact("Region", r.region or "—"),
    ]
    if r.subscription:
        facts.append(Fact("Subscription", r.subscription))
    return tuple(facts)


def _who_section(change: Actor | None) -> Section:
    if change is None or not any((change.handle, change.operation, change.time, change.correlation_id)):
        return Section("Who changed it", text="No change event: found by a scheduled sweep or a snapshot, "
                                              "so the author is not known. The Activity Log names them.")
    facts = [Fact("Changed by", change.handle or "unknown")]
    if change.person and change.app_id:
        facts.append(Fact("App ID", change.app_id))
    if change.object_id and change.handle != f"object {change.object_id}":
        facts.append(Fact("Object ID", change.object_id, mono=True))
    if change.operation:
        facts.append(Fact("Operation", change.operation))
    if change.time:
        facts.append(Fact("Time", format_time(change.time)))
    if change.correlation_id:
        facts.append(Fact("Correlation ID", change.correlation_id, mono=True))
    if change.event_id:
        facts.append(Fact("Event ID", change.event_id, mono=True))
    return Section("Who changed it", facts=tuple(facts))


def _action_section(alert: Alert) -> Section:
    a = alert.action
    tone = {ActionKind.FIXED: "good", ActionKind.FIX_FAILED: "attention", ActionKind.EXEMPT: "accent"}.get(a.kind)
    if a.kind is ActionKind.FIXED:
        facts = []
        if a.property_path:
            facts.append(Fact("Property", a.property_path, mono=True))
        facts += [Fact("Before", clip(a.before) or "(absent)", mono=True),
                  Fact("After", clip(a.after) or "(absent)", mono=True)]
        return Section("What ExfilGuard did", lead=a.headline, text=alert.finding.fix_summary,
                       facts=tuple(facts), tone=tone)
    if a.kind is ActionKind.FIX_FAILED:
        return Section("What ExfilGuard did", lead=a.headline,
                       text=clip(a.reason) or "no reason given",
                       tone=tone)
    if a.kind is ActionKind.EXEMPT:
        reason = f" Reason: {clip(a.reason, 300)}" if a.reason else ""
        return Section("What ExfilGuard did", lead=a.headline,
                       text=f"by the resource's exfilguard-exempt tag.{reason}", tone=tone)
    if a.kind is ActionKind.WOULD_FIX:
        return Section("What ExfilGuard did", lead=a.headline,
                       text=f"in remediate mode it would {a.plan or alert.finding.fix_summary}", tone=tone)
    summary = alert.finding.fix_summary
    text = ("this rule is never changed automatically." if not summary or summary.startswith("alert")
            else f"not changed automatically: {clip(summary, 300)}.")
    return Section("What ExfilGuard did", lead=a.headline, text=text, tone=tone)


def alert_content(alert: Alert) -> Content:
    f = alert.finding
    r = alert.resource
    badge = _severity_badge(f.severity)
    who = f"changed by {alert.change.handle}; " if alert.change and alert.change.handle else ""
    sections = [
        Section("Resource", facts=_resource_facts(r)),
        Section("What changed", text=clip(f.detail),
                lines=tuple(Line("", clip(item, 300)) for item in f.items), more_label="more items"),
        _who_section(alert.change),
        _action_section(alert),
        Section("Next step", text=alert.next_step),
        Section("Re-check", text="Evaluate this resource again now:", code=(alert.recheck,)),
    ]
    return Content(
        kind="alert",
        badge=badge,
        tone=TONE_BY_SEVERITY[f.severity],
        title=f"{f.rule_id} · {f.title}",
        title_url=alert.guidance_url,
        subject=f"[ExfilGuard] {badge}: {f.rule_id} {f.title} on {r.name} ({alert.action.short})",
        summary=f"{r.type_label} {r.name} in {r.resource_group or 'its resource group'}"
                f"{' (' + r.region + ')' if r.region else ''}: {who}{alert.action.by_exfilguard}.",
        sections=tuple(sections),
        links=(Link("Open in Azure portal", r.portal_url), Link("Microsoft guidance", alert.guidance_url)),
        keys=(alert.key,),
        severity=f.severity,
    )


def digest_content(alerts: list[Alert] | tuple[Alert, ...], *, title: str = "",
                   exemptions: list[ActiveExemption] | tuple[ActiveExemption, ...] = (),
                   report_url: str | None = None) -> Content:
    """One message for a sweep: sections by severity (worst first), resources inside them, then
    every exemption in force with its expiry (protection switched off must stay visible).
    ``report_url``: the sweep's HTML report (``GET /api/report``), linked first."""
    by_sev: dict[Severity, dict[str, list[Alert]]] = defaultdict(lambda: defaultdict(list))
    for a in alerts:
        by_sev[a.severity][a.resource.resource_id.lower()].append(a)
    order = sorted(by_sev, key=lambda s: -s.rank)
    counts = {s: sum(len(v) for v in by_sev[s].values()) for s in order}
    resources = {a.resource.resource_id.lower() for a in alerts}
    sections = []
    for sev in order:
        groups = []
        for _, items in sorted(by_sev[sev].items(), key=lambda kv: (kv[1][0].resource.resource_group.lower(),
                                                                    kv[1][0].resource.name.lower())):
            r = items[0].resource
            lines = tuple(Line(a.finding.rule_id, f"{a.finding.title} ({a.action.short})")
                          for a in sorted(items, key=lambda a: a.finding.rule_id))
            where = " · ".join(x for x in (r.type_label, r.resource_group, r.region) if x)
            groups.append(Group(r.name, r.portal_url, where, lines))
        sections.append(Section(f"{_severity_badge(sev)} · {counts[sev]}", groups=tuple(groups),
                                tone=TONE_BY_SEVERITY[sev], more_label="more findings"))
    worst = order[0] if order else Severity.LOW
    n = len(alerts)
    tally = ", ".join(f"{counts[s]} {s.value}" for s in order)
    head = title or "ExfilGuard sweep"
    sections.append(Section("Next step", text="Open each resource from its link and follow the rule's guidance; "
                                              "exfilguard scan lists every finding with its fix. Findings alerted "
                                              "within the dedup window are not repeated here."))
    if report_url:
        sections.append(Section("Full report", text="Every workspace's network path drawn with its findings, what "
                                                    "was fixed and what needs a person (the Function app asks for "
                                                    "its function key: add &code=<function key>):",
                                code=(report_url,)))
    if alerts:
        sample = alerts[0]
        sections.append(Section("Re-check", text="Evaluate one resource again now:",
                                code=(sample.recheck.replace(sample.finding.resource_id, "<resource ID>"),)))
    if exemptions:
        sections.append(exemptions_section(exemptions))
    return Content(
        kind="digest",
        badge=_severity_badge(worst),
        tone=TONE_BY_SEVERITY[worst],
        title=f"{head}: {n} finding{'s' if n != 1 else ''} on {len(resources)} resource"
              f"{'s' if len(resources) != 1 else ''}"
              + (f", {len(exemptions)} active exemption{'s' if len(exemptions) != 1 else ''}" if exemptions else ""),
        subject=f"[ExfilGuard] {head.removeprefix('ExfilGuard ').capitalize()}: {n} finding{'s' if n != 1 else ''}"
                f" ({tally})",
        summary=(f"By severity: {tally}." if alerts else "No new findings.")
        + (f" Exemptions in force: {len(exemptions)}." if exemptions else ""),
        sections=tuple(sections),
        links=((Link("Open the full report", report_url),) if report_url else ())
        + (Link("Microsoft guidance", guidance.GUIDE_EXFIL),),
        keys=tuple(a.key for a in alerts),
        severity=worst,
    )


def exemptions_section(exemptions: list[ActiveExemption] | tuple[ActiveExemption, ...]) -> Section:
    """The digest's "Active exemptions" list, soonest expiry first."""
    lines = tuple(
        Line(", ".join(e.rule_ids), f"{e.resource.name} ({e.resource.type_label}, "
                                    f"{e.resource.resource_group or '—'}) until {e.until}: {clip(e.reason, 200)}",
             url=e.resource.portal_url)
        for e in sorted(exemptions, key=lambda e: (e.until, e.resource.name.lower())))
    return Section("Active exemptions", text="Protection is switched off for these rules on these resources "
                                             "until the date shown (UTC, inclusive):",
                   lines=lines, tone="warning", more_label="more exemptions")


def exemption_change_content(x: ExemptionChange) -> Content:
    """An exemption tag appeared or changed: who did it, what it switches off, until when, why."""
    r = x.resource
    verb = "changed" if x.previous else "set"
    actor = x.change.handle if x.change else ""
    facts = list(_resource_facts(r))
    facts.append(Fact("Rules", ", ".join(x.rule_ids) or "—"))
    facts.append(Fact("Until", x.until or "—"))
    facts.append(Fact("Reason", clip(x.reason, 500) or "—"))
    facts.append(Fact("Tag value", clip(x.value, 500), mono=True))
    if x.previous:
        facts.append(Fact("Before", clip(x.previous, 500), mono=True))
    if x.in_force:
        effect = (f"ExfilGuard no longer fixes or alerts {', '.join(x.rule_ids)} on {r.name} until {x.until} "
                  "(inclusive, UTC).")
        step = ("Confirm that this exemption was approved. If it was not, remove the tag: ExfilGuard fixes or "
                "alerts the resource again from its next evaluation.")
        tone = "warning"
    else:
        effect = f"The tag exempts nothing: it is {x.status_note or x.status}. The findings still count."
        step = "Nothing is switched off. Remove or correct the tag so that it does not mislead."
        tone = "accent"
    sections = [
        Section("Exemption", lead="In force" if x.in_force else "Not in force", text=effect, facts=tuple(facts),
                tone=tone),
        _who_section(x.change),
        Section("Next step", text=step),
    ]
    by = f" by {actor}" if actor else ""
    return Content(
        kind="exemption",
        badge="EXEMPTION",
        tone=tone,
        title=f"Exemption {verb} on {r.name}",
        subject=f"[ExfilGuard] EXEMPTION {verb}{by} on {r.name}: {', '.join(x.rule_ids) or x.status}"
                + (f" until {x.until}" if x.until else ""),
        summary=f"{r.type_label} {r.name}: exfilguard-exempt {verb}{by}; "
                + (f"{', '.join(x.rule_ids)} not enforced until {x.until}." if x.in_force
                   else "ignored by ExfilGuard (not in force)."),
        sections=tuple(sections),
        links=(Link("Open in Azure portal", r.portal_url),),
        keys=(x.key,),
        severity=Severity.HIGH if x.in_force else Severity.LOW,
    )


def escalation_content(e: Escalation) -> Content:
    r = e.resource
    minutes = int(e.window.total_seconds() // 60)
    span = f"{minutes // 60} hours" if minutes >= 120 and minutes % 60 == 0 else f"{minutes} minutes"
    actor = e.actor.handle if e.actor else ""
    facts = list(_resource_facts(r))
    facts.append(Fact("Rules", ", ".join(e.rule_ids) or "—"))
    facts.append(Fact("Fix writes", f"{e.write_count} within {span}"))
    if e.detected_at:
        facts.append(Fact("Detected", format_time(e.detected_at)))
    if e.held:
        happened = (f"ExfilGuard fixed {r.name} and something changed it back, {e.write_count} fix writes, even "
                    "after backing off. ExfilGuard has stopped fixing this resource so the two do not fight; it "
                    "needs a person.")
        title = f"Fix loop stopped on {r.name}"
        step = (f"Find the automation{' run by ' + actor if actor else ''} (pipeline, policy, script) that writes "
                "this resource and bring its template in line with the baseline, then release the resource "
                "so that ExfilGuard fixes it again (see above).")
    else:
        happened = (f"ExfilGuard fixed {r.name} and something changed it back, {e.write_count} fix writes within "
                    f"{span}. ExfilGuard is backing off so the two do not fight.")
        title = f"Fix loop on {r.name}: backing off"
        step = (f"Find the automation{' run by ' + actor if actor else ''} (pipeline, policy, script) that writes "
                "this resource and bring its template in line with the baseline.")
    sections = [
        Section("What happened", text=happened + (f" {e.note}" if e.note else ""), facts=tuple(facts)),
        _who_section(e.actor),
        Section("Next step", text=step),
    ]
    verb = "fix loop stopped" if e.held else "fix loop, backing off"
    return Content(
        kind="escalation",
        badge="ESCALATION",
        tone="attention",
        title=title,
        subject=f"[ExfilGuard] ESCALATION: {verb} on {r.name}" + (f" (fighting {actor})" if actor else ""),
        summary=f"Likely other writer: {actor}." if actor else "The other writer is not known.",
        sections=tuple(sections),
        links=(Link("Open in Azure portal", r.portal_url),),
        keys=(e.key,),
        severity=Severity.CRITICAL,
    )


def resolved_content(notices: list[ResolvedNotice] | tuple[ResolvedNotice, ...]) -> Content:
    lines = tuple(
        Line(n.rule_id, f"{n.title + ' · ' if n.title else ''}{n.resource.name} ({n.resource.type_label}, "
                        f"{n.resource.resource_group or '—'})", url=n.resource.portal_url)
        for n in sorted(notices, key=lambda n: (-n.severity.rank, n.rule_id, n.resource.name.lower())))
    one = len(notices) == 1
    first = notices[0] if notices else None
    title = (f"Resolved: {first.rule_id} on {first.resource.name}" if one and first
             else f"Resolved: {len(notices)} findings are gone")
    return Content(
        kind="resolved",
        badge="RESOLVED",
        tone="good",
        title=title,
        subject=f"[ExfilGuard] {title}",
        summary="These findings were alerted earlier and are no longer present: fixed, exempted "
                "or the resource was removed.",
        sections=(Section("No longer found", lines=lines, more_label="more findings"),),
        links=(Link("Open in Azure portal", first.resource.portal_url),) if one and first else (),
        keys=tuple(n.key for n in notices),
        severity=max((n.severity for n in notices), key=lambda s: s.rank) if notices else None,
    )


def test_content(t: TestAlert) -> Content:
    return Content(
        kind="test",
        badge="TEST",
        tone="accent",
        title="ExfilGuard test alert",
        subject="[ExfilGuard] Test alert: the alert channel works",
        summary="If you can read this, ExfilGuard can reach this channel. Nothing is wrong.",
        sections=(Section("Sent", facts=(Fact("Time", format_time(t.sent_at)),)),),
        keys=("TEST",),
    )


test_content.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
