"""The loop guard: ExfilGuard and another writer must not revert each other forever.

Per written resource, in Table storage (``<prefix>fixloop``, one entity per resource, updated
with ETag concurrency so two app instances cannot both take the last slot):

1. **Normal**: up to ``max_writes`` fix writes within ``memory`` (default 24 hours). Every
   fix after the first within that time means something undid the previous one, however
   slowly the other writer works (every minute or every few hours).
2. **Backing off**: the next fix needed past that is refused, and fixing pauses for one
   ``window`` (``EXFILGUARD_LOOP_WINDOW_MINUTES``); after the pause one probe write is allowed,
   and the pause doubles (``window``, ``2 x window``, ``4 x window``...). The first pause sends
   one escalation ("backing off").
3. **Held**: a fix needed after ``max_backoffs`` pauses means the other writer is persistent.
   ExfilGuard stops fixing that resource, sends one escalation that a person is needed
   (naming the other writer), and stays held until a person clears it
   (``POST /api/loopguard/release``, audited with the caller).

A fight that stopped is forgotten: when no fix was written for ``memory``, the resource is
back to normal (a held one stays held). Against a writer that reverts every fix at once this bounds
a day to ``max_writes + max_backoffs - 1`` writes (5 with the defaults) and two escalations.

The policy (:func:`decide`) is a pure function of the stored record and the time, so it is
tested without storage; :class:`LoopGuard` is the thin Table adapter around it. Time comes
from an injected clock, so a day of fighting is tested in fake time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from exfilguard.adapters.state import from_iso
from exfilguard.core import ids
from exfilguard.core.actor import Actor

if TYPE_CHECKING:
    from azure.data.tables import TableEntity

_CAS_ATTEMPTS = 12
ROW = "guard"

GuardState = Literal["normal", "backing-off", "held"]
NORMAL: Final = "normal"
BACKING_OFF: Final = "backing-off"
HELD: Final = "held"


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


def partition(resource_id: str) -> str:
    """A Table key for an ARM ID: IDs hold '/', which keys may not, and can exceed 1 KiB."""
    return hashlib.sha256(ids.key(resource_id).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Policy:
    max_writes: int = 3
    window: timedelta = timedelta(minutes=10)
    max_backoffs: int = 3
    memory: timedelta = timedelta(hours=24)

    def pause(self, backoffs: int) -> timedelta:
        """The pause after the ``backoffs``-th refusal: one window, doubling each time."""
        return self.window * (2 ** max(0, backoffs - 1))


@dataclass(frozen=True, slots=True)
class Record:
    """What the guard remembers about one resource."""

    resource_id: str
    writes: tuple[datetime, ...] = ()     # fix writes within the window (and the last one)
    backoffs: int = 0                     # pauses started in the current fight
    resume_at: datetime | None = None     # no fix before this (backing off)
    held_at: datetime | None = None       # stopped: only a person clears it
    last_write: datetime | None = None
    writer: Actor | None = None          # the last other writer known
    total_writes: int = 0                 # in the current fight, for the escalation text

    @property
    def state(self) -> GuardState:
        if self.held_at is not None:
            return HELD
        if self.backoffs:
            return BACKING_OFF
        return NORMAL

    def to_entity(self) -> dict[str, Any]:
        return {"PartitionKey": partition(self.resource_id), "RowKey": ROW, "ResourceId": self.resource_id[:2048],
                "Writes": json.dumps([_iso(t) for t in self.writes]), "Backoffs": self.backoffs,
                "ResumeAt": _iso(self.resume_at), "HeldAt": _iso(self.held_at), "LastWrite": _iso(self.last_write),
                "Writer": json.dumps(self.writer.to_json()) if self.writer else "", "TotalWrites": self.total_writes,
                "State": self.state}

    @classmethod
    def from_entity(cls, e: dict[str, Any]) -> Record:
        writer_text = e.get("Writer") or ""
        return cls(resource_id=e.get("ResourceId", ""),
                   writes=tuple(t for t in (from_iso(v) for v in json.loads(e.get("Writes") or "[]")) if t),
                   backoffs=int(e.get("Backoffs") or 0), resume_at=from_iso(e.get("ResumeAt")),
                   held_at=from_iso(e.get("HeldAt")), last_write=from_iso(e.get("LastWrite")),
                   writer=Actor.from_json(json.loads(writer_text)) if writer_text else None,
                   total_writes=int(e.get("TotalWrites") or 0))


@dataclass(frozen=True, slots=True)
class Decision:
    """The guard's answer to "may I write this resource now?"."""

    resource_id: str
    allowed: bool
    state: GuardState             # after this decision
    escalate: Literal["", "backing-off", "held"] = ""  # send that escalation now (once each)
    writes_in_window: int = 0
    total_writes: int = 0
    resume_at: datetime | None = None
    writer: Actor | None = None
    slot: datetime | None = None  # the reserved write time, to give back when nothing was written
    reason: str = ""


def decide(record: Record | None, resource_id: str, now: datetime, policy: Policy,
           writer: Actor | None = None) -> tuple[Record, Decision]:
    """The pure policy: the new record and the decision for one fix this resource needs now."""
    rec = record or Record(resource_id=resource_id)
    if writer is not None and writer.handle:
        rec = replace(rec, writer=writer)
    if rec.held_at is not None:
        return rec, Decision(resource_id, False, HELD, writer=rec.writer, total_writes=rec.total_writes,
                             reason=f"held since {_iso(rec.held_at)}: automatic fixing of this resource is stopped "
                                    "until a person releases it")
    if rec.backoffs and rec.last_write and now - rec.last_write >= policy.memory:
        rec = replace(rec, backoffs=0, resume_at=None, total_writes=0)  # the fight is over: start afresh
    recent = tuple(t for t in rec.writes if t > now - policy.memory)

    def allow(new: Record) -> tuple[Record, Decision]:
        new = replace(new, writes=(*recent, now), last_write=now, total_writes=new.total_writes + 1)
        return new, Decision(resource_id, True, new.state, writes_in_window=len(recent) + 1,
                             total_writes=new.total_writes, resume_at=new.resume_at, writer=new.writer, slot=now)

    if rec.backoffs == 0:
        if len(recent) < policy.max_writes:
            return allow(rec)
        resume = now + policy.pause(1)
        rec = replace(rec, writes=recent, backoffs=1, resume_at=resume)
        return rec, Decision(resource_id, False, BACKING_OFF, escalate=BACKING_OFF, writes_in_window=len(recent),
                             total_writes=rec.total_writes, resume_at=resume, writer=rec.writer,
                             reason=f"{len(recent)} fix writes within {_span(policy.memory)}: backing off until "
                                    f"{_iso(resume)}")
    if rec.resume_at is not None and now < rec.resume_at:
        return rec, Decision(resource_id, False, BACKING_OFF, writes_in_window=len(recent),
                             total_writes=rec.total_writes, resume_at=rec.resume_at, writer=rec.writer,
                             reason=f"backing off until {_iso(rec.resume_at)} (pause {rec.backoffs} of "
                                    f"{policy.max_backoffs})")
    if rec.backoffs >= policy.max_backoffs:
        rec = replace(rec, writes=recent, held_at=now, resume_at=None)
        return rec, Decision(resource_id, False, HELD, escalate=HELD, writes_in_window=len(recent),
                             total_writes=rec.total_writes, writer=rec.writer,
                             reason=f"still reverted after {policy.max_backoffs} pauses: held until a person "
                                    "releases it")
    # The pause is over: one probe write, and the next pause (should it be reverted again) doubles.
    backoffs = rec.backoffs + 1
    return allow(replace(rec, backoffs=backoffs, resume_at=now + policy.pause(backoffs)))


def _span(d: timedelta) -> str:
    minutes = int(d.total_seconds() // 60)
    return f"{minutes // 60} hours" if minutes % 60 == 0 and minutes >= 120 else f"{minutes} minutes"


def release_slot(record: Record | None, slot: datetime) -> Record | None:
    """Give back a slot whose write did not happen (nothing to change, conflict, failure)."""
    if record is None or slot not in record.writes:
        return None
    writes = list(record.writes)
    writes.remove(slot)
    return replace(record, writes=tuple(writes), total_writes=max(0, record.total_writes - 1))


@dataclass
class LoopGuard:
    """The Table adapter. ``table`` is an ``azure.data.tables.TableClient``."""

    table: Any
    policy: Policy = field(default_factory=Policy)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def reserve(self, resource_id: str, writer: Actor | None = None) -> Decision:
        now = self.clock()
        return self._swap(resource_id, lambda rec: decide(rec, resource_id, now, self.policy, writer))

    def release(self, decision: Decision) -> None:
        if not decision.allowed or decision.slot is None:
            return
        slot = decision.slot
        self._swap(decision.resource_id, lambda rec: (release_slot(rec, slot), None))

    def status(self, resource_id: str) -> Record | None:
        entity = self._get(partition(resource_id))
        return Record.from_entity(entity) if entity is not None else None

    def held(self) -> list[Record]:
        from azure.core.exceptions import AzureError

        from exfilguard.adapters.state import StateError

        try:
            rows = list(self.table.query_entities("State eq @s", parameters={"s": HELD}))
        except AzureError as exc:
            raise StateError(f"table {self.table.table_name}: query failed ({exc})") from exc
        records = [Record.from_entity(e) for e in rows]
        return sorted(records, key=lambda r: r.held_at or datetime.min.replace(tzinfo=UTC))

    def clear(self, resource_id: str) -> Record | None:
        """A person releases the resource: back to normal, with the fight forgotten. Returns the
        record as it was (None when the guard knew nothing of the resource)."""
        before: list[Record | None] = [None]

        def change(rec: Record | None) -> tuple[Record | None, None]:
            before[0] = rec
            if rec is None:
                return None, None
            return Record(resource_id=rec.resource_id, writer=rec.writer), None

        self._swap(resource_id, change)
        return before[0]

    # ---- storage ------------------------------------------------------------------------------
    def _get(self, pk: str) -> TableEntity | None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        from exfilguard.adapters.state import StateError

        try:
            return self.table.get_entity(pk, ROW)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise StateError(f"table {self.table.table_name}: read failed ({exc})") from exc

    def _swap(self, resource_id: str, change: Callable[[Record | None], tuple[Record | None, Any]]) -> Any:
        """Read-modify-write one entity with ETag concurrency, retrying when another instance won."""
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        from exfilguard.adapters.state import StateError

        pk = partition(resource_id)
        for _ in range(_CAS_ATTEMPTS):
            current = self._get(pk)
            new, result = change(Record.from_entity(current) if current is not None else None)
            if new is None:
                return result
            entity = new.to_entity()
            if not entity["ResourceId"]:
                entity["ResourceId"] = resource_id[:2048]
            try:
                if current is None:
                    self.table.create_entity(entity)
                else:
                    self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                                             match_condition=MatchConditions.IfNotModified)
                return result
            except (ResourceModifiedError, ResourceExistsError):
                continue  # another instance changed it first: read again
            except AzureError as exc:
                raise StateError(f"table {self.table.table_name}: update failed ({exc})") from exc
        raise StateError(f"table {self.table.table_name}: entity for {resource_id} kept changing; gave up after "
                         f"{_CAS_ATTEMPTS} attempts")
