"""What every rule module shares: its catalog entry type and the evaluation context."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..config import Config
from ..findings import Finding, FixKind, Severity
from ..fixes import Edit
from ..frozen import quick_init
from ..picture import Picture

GUIDE_EXFIL = "https://learn.microsoft.com/azure/machine-learning/how-to-prevent-data-loss-exfiltration"
GUIDE_TRAINING = "https://learn.microsoft.com/azure/machine-learning/how-to-secure-training-vnet"
GUIDE_MANAGED = "https://learn.microsoft.com/azure/machine-learning/how-to-managed-network"
GUIDE_ENV = "https://learn.microsoft.com/azure/machine-learning/concept-environments"


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule's catalog entry (baseline.md), kept next to its code."""

    id: str
    title: str
    severity: Severity
    fix_kind: FixKind
    fix: str  # what remediation does, in words
    rationale: str  # why it matters, from the source article
    guidance: str  # Microsoft guidance URL

    def finding(self, resource_id: str, resource_type: str, detail: str, *, edits: Iterable[Edit] = (),
                fix_summary: str | None = None, fixable: bool = True, items: Iterable[str] = ()) -> Finding:
        """Build this rule's finding; ``fix.mode`` is auto only when edits exist and may be applied."""
        edits = tuple(edits)
        auto = self.fix_kind is not FixKind.ALERT and fixable and bool(edits)
        return Finding(
            rule_id=self.id, resource_id=resource_id, severity=self.severity, title=self.title, detail=detail,
            fix_summary=fix_summary or self.fix, fix_mode="auto" if auto else "manual",
            edits=edits if auto else (), resource_type=resource_type, items=tuple(items),
        )


@quick_init
@dataclass(frozen=True, slots=True)
class Context:
    picture: Picture
    config: Config
