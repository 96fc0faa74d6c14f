"""What an alert says, as plain values, independent of where findings come from.

The Function app builds these from an Event Grid event, a sweep or a snapshot; everything
after (cards, email, dedup) reads only these, so a new trigger never touches rendering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Literal

from exfilguard.alerts import guidance
from exfilguard.core import exemptions
from exfilguard.core.actor import Actor
from exfilguard.core.findings import Finding, Severity
from exfilguard.core.ids import key as id_key

PORTAL_RESOURCE_URL = "https://portal.azure.com/#@/resource"
DEFAULT_HTTP_ENDPOINT = "https://<function-app>.azurewebsites.net"


def alert_key(rule_id: str, resource_id: str) -> str:
    """Identity of "the same open finding" for dedup: rule plus case-insensitive resource ID."""
    return f"{rule_id.upper()}|{id_key(resource_id)}"


def format_time(value: datetime | None) -> str:
    """Minutes and an explicit zone: the precision a reader correlates with activity logs."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class ResourceFacts:
    """The resource as a reader knows it: a name and a place, plus the ID for the portal link."""

    resource_id: str
    name: str
    type: str
    resource_group: str
    region: str = ""
    subscription: str = ""

    @classmethod
    def from_resource_id(cls, resource_id: str, *, region: str = "", resource_type: str = "") -> ResourceFacts:
        """Name, type, group and subscription by splitting the ARM ID.

        A plain split, not :mod:`exfilguard.core.ids` parsing: an alert about a malformed ID must
        still go out, so nothing here raises.
        """
        parts = [p for p in resource_id.strip().split("/") if p]
        lower = [p.lower() for p in parts]
        subscription = parts[lower.index("subscriptions") + 1] if "subscriptions" in lower[:-1] else ""
        group = parts[lower.index("resourcegroups") + 1] if "resourcegroups" in lower[:-1] else ""
        derived_type = ""
        name = parts[-1] if parts else resource_id
        if "providers" in lower[:-1]:
            rest = parts[lower.index("providers") + 1:]
            if rest:
                namespace, pairs = rest[0], rest[1:]
                types = pairs[0::2]
                names = pairs[1::2]
                if types and names:
                    derived_type = "/".join([namespace, *types[: len(names)]])
                    name = names[-1]
        return cls(resource_id=resource_id, name=name, type=resource_type or derived_type,
                   resource_group=group, region=region, subscription=subscription)

    @property
    def portal_url(self) -> str:
        return f"{PORTAL_RESOURCE_URL}{self.resource_id}"

    @property
    def type_label(self) -> str:
        return guidance.friendly_type(self.type)

    @property
    def tag_holder(self) -> str:
        """Where the exemption tag goes: subnets carry no tags, so their VNet's (docs/semantics.md)."""
        if self.type.lower() == "microsoft.network/virtualnetworks/subnets":
            head, _, _ = self.resource_id.rstrip("/").rpartition("/subnets/")
            return head
        return self.resource_id


class ActionKind(str, Enum):
    FIXED = "fixed"
    FIX_FAILED = "fix_failed"
    ALERT_ONLY = "alert_only"
    EXEMPT = "exempt"
    WOULD_FIX = "would_fix"


@dataclass(frozen=True, slots=True)
class ActionTaken:
    """What ExfilGuard already did, so the reader does not redo or undo it."""

    kind: ActionKind
    property_path: str = ""  # fixed: the property that changed
    before: str = ""         # fixed: its value before
    after: str = ""          # fixed: its value after
    reason: str = ""         # fix_failed: why; exempt: the tag's reason
    until: str = ""          # exempt: YYYY-MM-DD
    plan: str = ""           # would_fix: what remediate mode would do

    @classmethod
    def fixed(cls, before: str, after: str, property_path: str = "") -> ActionTaken:
        return cls(ActionKind.FIXED, property_path=property_path, before=before, after=after)

    @classmethod
    def fix_failed(cls, reason: str) -> ActionTaken:
        return cls(ActionKind.FIX_FAILED, reason=reason)

    @classmethod
    def alert_only(cls) -> ActionTaken:
        return cls(ActionKind.ALERT_ONLY)

    @classmethod
    def exempt(cls, until: str, reason: str = "") -> ActionTaken:
        return cls(ActionKind.EXEMPT, until=until, reason=reason)

    @classmethod
    def would_fix(cls, plan: str) -> ActionTaken:
        return cls(ActionKind.WOULD_FIX, plan=plan)

    @property
    def headline(self) -> str:
        """Two or three words, shown first in the "What ExfilGuard did" section."""
        return {
            ActionKind.FIXED: "Fixed",
            ActionKind.FIX_FAILED: "Fix failed",
            ActionKind.ALERT_ONLY: "Alert only (not changed)",
            ActionKind.EXEMPT: f"Exempt until {self.until}",
            ActionKind.WOULD_FIX: "Audit mode: not changed",
        }[self.kind]

    @property
    def short(self) -> str:
        """A digest line's suffix."""
        return {
            ActionKind.FIXED: "fixed",
            ActionKind.FIX_FAILED: "fix failed",
            ActionKind.ALERT_ONLY: "alert only",
            ActionKind.EXEMPT: f"exempt until {self.until}",
            ActionKind.WOULD_FIX: "would fix",
        }[self.kind]

    @property
    def by_exfilguard(self) -> str:
        """What ExfilGuard did, as the second half of a summary line ("changed by Dana;
        fixed by ExfilGuard"): never read as if the person who made the drift fixed it."""
        return {
            ActionKind.FIXED: "fixed by ExfilGuard",
            ActionKind.FIX_FAILED: "ExfilGuard's fix failed",
            ActionKind.ALERT_ONLY: "not changed by ExfilGuard (alert only)",
            ActionKind.EXEMPT: f"exempt until {self.until}",
            ActionKind.WOULD_FIX: "not changed by ExfilGuard (audit mode)",
        }[self.kind]

    @property
    def leaves_finding_open(self) -> bool:
        """Whether the finding is still there after this action (dedup applies only then)."""
        return self.kind is not ActionKind.FIXED


def recheck_command(resource_id: str, http_endpoint: str | None) -> str:
    """The HTTP call that re-evaluates one resource now, with the key left for the reader."""
    base = (http_endpoint or DEFAULT_HTTP_ENDPOINT).rstrip("/")
    body = '{"resourceId":"' + resource_id.replace('"', '\\"') + '"}'
    return f"curl -X POST \"{base}/api/evaluate?code=<function key>\" -H \"Content-Type: application/json\" -d '{body}'"


@dataclass(frozen=True, slots=True)
class Alert:
    """One finding, told to a person: what, where, who, what was done and what to do."""

    finding: Finding
    resource: ResourceFacts
    action: ActionTaken
    change: Actor | None = None
    next_step: str = ""
    recheck: str = ""

    @property
    def key(self) -> str:
        return alert_key(self.finding.rule_id, self.finding.resource_id)

    @property
    def severity(self) -> Severity:
        return self.finding.severity

    @property
    def guidance_url(self) -> str:
        return guidance.guidance_url(self.finding.rule_id)

    @classmethod
    def build(
        cls,
        finding: Finding,
        *,
        action: ActionTaken | None = None,
        change: Actor | None = None,
        region: str = "",
        http_endpoint: str | None = None,
        next_step: str | None = None,
    ) -> Alert:
        """An alert with every derived text filled in. Without an ``action``: exempt findings
        are exempt, ``fix_mode == "auto"`` is audit mode's would-fix, anything else alert-only."""
        if action is None:
            if finding.exempt and finding.exemption is not None:
                action = ActionTaken.exempt(finding.exemption.until, finding.exemption.reason)
            elif finding.fix_mode == "auto":
                action = ActionTaken.would_fix(finding.fix_summary)
            else:
                action = ActionTaken.alert_only()
        resource = ResourceFacts.from_resource_id(finding.resource_id, region=region,
                                                  resource_type=finding.resource_type)
        actor = change.handle if change else ""
        step = next_step if next_step is not None else guidance.next_step(
            finding.rule_id, action.kind.value, action.plan or finding.fix_summary, actor=actor)
        return cls(
            finding=finding,
            resource=resource,
            action=action,
            change=change,
            next_step=step,
            recheck=recheck_command(finding.resource_id, http_endpoint),
        )


@dataclass(frozen=True, slots=True)
class Escalation:
    """The loop guard tripped: something keeps rewriting a resource ExfilGuard keeps fixing.
    Always delivered, never deduplicated. ``stage`` is ``backing-off`` (fixing pauses, with
    doubling pauses) or ``held`` (fixing has stopped until a person releases the resource):
    at most one of each per fight."""

    resource: ResourceFacts
    rule_ids: tuple[str, ...]
    write_count: int
    window: timedelta
    actor: Actor | None = None  # the likely other writer, from the events' claims
    detected_at: datetime | None = None
    note: str = ""
    stage: Literal["held", "backing-off"] = "held"

    @property
    def held(self) -> bool:
        return self.stage == "held"

    @property
    def key(self) -> str:
        return f"ESCALATION|{id_key(self.resource.resource_id)}"


@dataclass(frozen=True, slots=True)
class ExemptionChange:
    """An ``exfilguard-exempt`` tag appeared or changed: protection was switched off (or an
    attempt was made). Sent in every mode, never deduplicated away: the point is that someone
    other than the person who set the tag learns of it (baseline.md, "Exemptions")."""

    resource: ResourceFacts
    value: str                      # the tag value as written
    previous: str = ""              # the value before, when it changed
    rule_ids: tuple[str, ...] = ()  # parsed, when it parses
    until: str = ""
    reason: str = ""
    status: exemptions.Status | Literal[""] = ""
    status_note: str = ""           # why it does or does not exempt
    change: Actor | None = None
    detected_at: datetime | None = None

    @property
    def key(self) -> str:
        import hashlib

        digest = hashlib.sha256(self.value.encode("utf-8")).hexdigest()[:16]
        return f"EXEMPTION|{id_key(self.resource.resource_id)}|{digest}"

    @property
    def in_force(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class ActiveExemption:
    """One exemption in force, for the sweep digest's list."""

    resource: ResourceFacts
    rule_ids: tuple[str, ...]
    until: str
    reason: str


@dataclass(frozen=True, slots=True)
class ResolvedNotice:
    """A finding that was alerted earlier is gone: fixed by someone, or the resource removed."""

    rule_id: str
    resource: ResourceFacts
    title: str = ""
    severity: Severity = Severity.MEDIUM
    resolved_at: datetime | None = None
    first_alerted: datetime | None = None

    @property
    def key(self) -> str:
        return alert_key(self.rule_id, self.resource.resource_id)


@dataclass(frozen=True, slots=True)
class TestAlert:
    """A harmless message that proves the channels are set up (``exfilguard notify --test``)."""

    sent_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    __test__ = False  # not a pytest class, despite the name
