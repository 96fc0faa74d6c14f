"""Intent-to-fix records: a fix is written down before it is written to ARM.

The failure this closes: ExfilGuard fixes a resource, then storage fails before the "fixed"
audit row and the alert. The handler raises, Event Grid redelivers, and the redelivered event
reads a resource that is already fixed: nothing to do, so nobody would ever be told. With an
intent recorded (``<prefix>intents``, one row per event and target) *before* the write, the
redelivery finds it, sees the resource's ETag moved on and the finding gone, and completes
what the first delivery could not: the "fixed" audit row and the alert. The row is deleted
only once its write has been audited, so a run that dies anywhere in between leaves it for
the next delivery.

Rows are keyed by event: only a redelivery of the same event reads them (one Table query
per evaluated event).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from exfilguard.adapters.state import State, StateError, _why
from exfilguard.core import ids
from exfilguard.core.findings import Finding, Severity

_SERVER_MEMBERS = frozenset({"id", "etag", "type", "provisioningState", "resourceGuid"})


def _pk(event_id: str) -> str:
    return hashlib.sha256(event_id.encode()).hexdigest()


def _rk(resource_id: str) -> str:
    return hashlib.sha256(ids.key(resource_id).encode()).hexdigest()


@dataclass(frozen=True)
class Intent:
    """One planned write, as recorded before it was sent."""

    event_id: str
    target_id: str
    rule_ids: tuple[str, ...]
    etag: str  # the ETag of the body the write was planned on ("" when it had none)
    changed: dict  # property path -> {"before", "after"} the write was to make
    findings: tuple[dict, ...]  # the findings it fixes (enough to alert about them)
    time: datetime
    edits: tuple[dict, ...] = ()  # the planned edits as JSON (see :func:`edits_json`)

    def in_place(self, body: dict) -> bool | None:
        """Whether ``body`` already has every planned edit (None when that cannot be told)."""
        from exfilguard.adapters.writer import diff
        from exfilguard.core.fixes import Edit, EditError, Sel, apply_edits

        try:
            edits = [Edit(op=e["op"], path=tuple(Sel(*p["sel"]) if isinstance(p, dict) else p for p in e["path"]),
                          value=e.get("value"), key=e.get("key", "name")) for e in self.edits
                     if e.get("op") != "action"]
            if not edits:
                return None
            # ARM adds its own members to what was written (a rule's id, etag, type,
            # provisioningState); those are not part of the fix.
            return not [path for path in diff(body, apply_edits(body, edits))
                        if path.rsplit(".", 1)[-1] not in _SERVER_MEMBERS]
        except (EditError, KeyError, TypeError, ValueError):
            return None

    def finding_objects(self) -> list[Finding]:
        out = []
        for f in self.findings:
            try:
                severity = Severity(f.get("severity", "high"))
            except ValueError:
                severity = Severity.HIGH
            out.append(Finding(rule_id=f.get("ruleId", ""), resource_id=f.get("resourceId", self.target_id),
                               severity=severity, title=f.get("title", ""), detail=f.get("detail", ""),
                               fix_summary=f.get("fixSummary", ""), fix_mode="auto",
                               resource_type=f.get("resourceType", "")))
        return out


def edits_json(edits: Any) -> tuple[dict, ...]:
    from exfilguard.core.fixes import Sel

    return tuple({"op": e.op, "path": [{"sel": [p.field, p.value]} if isinstance(p, Sel) else p for p in e.path],
                  "value": e.value, "key": e.key} for e in edits)


def finding_record(f: Finding) -> dict[str, Any]:
    return {"ruleId": f.rule_id, "resourceId": f.resource_id, "severity": f.severity.value, "title": f.title[:300],
            "detail": f.detail[:1000], "fixSummary": f.fix_summary[:500], "resourceType": f.resource_type}


class IntentStore:
    """The ``<prefix>intents`` table behind :class:`~exfilguard.adapters.state.State`'s connection."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.table = f"{state.prefix}intents"

    def record(self, intent: Intent) -> None:
        """Write the intent; raises :class:`StateError` (then nothing may be written to ARM)."""
        entity = {"PartitionKey": _pk(intent.event_id), "RowKey": _rk(intent.target_id),
                  "EventId": intent.event_id[:256], "TargetId": intent.target_id[:2048],
                  "RuleIds": json.dumps(list(intent.rule_ids)), "Etag": intent.etag[:512],
                  "Changed": json.dumps(intent.changed, default=str)[:30_000],
                  "Findings": json.dumps(list(intent.findings))[:30_000], "Time": intent.time,
                  "Edits": json.dumps(list(intent.edits), default=str)[:30_000]}
        self.state._upsert(self.table, entity)

    def pending(self, event_id: str) -> list[Intent]:
        """Intents of this event whose write was never audited."""
        rows = self.state._query(self.table, "PartitionKey eq @pk", {"pk": _pk(event_id)})
        out = []
        for e in rows:
            try:
                out.append(Intent(event_id=e.get("EventId", event_id), target_id=e.get("TargetId", ""),
                                  rule_ids=tuple(json.loads(e.get("RuleIds") or "[]")), etag=e.get("Etag", ""),
                                  changed=json.loads(e.get("Changed") or "{}"),
                                  findings=tuple(json.loads(e.get("Findings") or "[]")),
                                  time=e.get("Time") or datetime.now(UTC),
                                  edits=tuple(json.loads(e.get("Edits") or "[]"))))
            except ValueError:  # a clipped row: still finish it, with less detail
                out.append(Intent(event_id=event_id, target_id=e.get("TargetId", ""), rule_ids=(), etag="",
                                  changed={}, findings=(), time=datetime.now(UTC)))
        return out

    def done(self, event_id: str, target_id: str) -> None:
        """The write was audited: forget the intent."""
        from azure.core.exceptions import AzureError

        try:
            self.state._table(self.table).delete_entity(_pk(event_id), _rk(target_id))
        except AzureError as exc:
            raise StateError(f"table {self.table}: delete failed ({_why(exc)})") from exc
