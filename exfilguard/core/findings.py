"""What an evaluation produces: findings, each with its planned fix as data.

A finding is a value: the rule that fired, the resource it is about, why, and the exact
edits that would make the rule pass. Nothing here knows how edits are written to Azure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from exfilguard.core.fixes import Edit


class Severity(str, Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Higher is worse; used to sort reports and cards."""
        return {"critical": 4, "high": 3, "medium": 2, "low": 1}[self.value]


class FixKind(str, Enum):
    """What remediation a rule can ever do (its catalog entry), independent of mode."""

    AUTO = "auto"              # always fixable
    CONFIGURED = "configured"  # fixable when configuration names what to attach
    ALERT = "alert"            # never changed automatically


@dataclass(frozen=True, slots=True)
class Exemption:
    rules: frozenset[str]
    until: str  # YYYY-MM-DD, inclusive, UTC
    reason: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One (rule, resource) violation.

    ``target_id`` is where ``edits`` apply; it equals ``resource_id`` except for rules whose
    finding is about one resource but whose fix changes another (none today, kept explicit
    so the writer never guesses).
    """

    rule_id: str
    resource_id: str
    severity: Severity
    title: str
    detail: str
    fix_summary: str
    fix_mode: str  # "auto" | "manual" as in the report contract
    edits: tuple[Edit, ...] = ()
    target_id: str | None = None
    resource_type: str = ""
    exempt: bool = False
    exemption: Exemption | None = None
    items: tuple[str, ...] = field(default=())

    @property
    def fix_target(self) -> str:
        return self.target_id or self.resource_id

    def to_json(self) -> dict:
        """The report contract's finding object (docs/contracts.md section 3)."""
        out = {
            "ruleId": self.rule_id,
            "resourceId": self.resource_id,
            "severity": self.severity.value,
            "title": self.title,
            "detail": self.detail,
            "exempt": self.exempt,
            "fix": {"mode": self.fix_mode, "summary": self.fix_summary},
        }
        if self.exemption is not None:
            out["exemption"] = {"until": self.exemption.until, "reason": self.exemption.reason}
        return out


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth telling that is not a finding: expired exemptions, absent references,
    resources skipped because their JSON was malformed."""

    kind: str
    resource_id: str
    message: str

    def to_json(self) -> dict:
        return {"kind": self.kind, "resourceId": self.resource_id, "message": self.message}
