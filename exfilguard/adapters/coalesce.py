"""Coalescing event storms: many changes to one resource closure, one evaluation.

A Terraform apply writes the same NSG dozens of times in seconds; each write raises an
event, and each event evaluated on its own costs three ARM reads (NSG, VNet, one compute).
Events are therefore joined per closure root (the resource the event is re-read as) in
Table storage, ``<prefix>coalesce``, because Flex Consumption scales out and the events of
one storm land on several instances:

- The first event of a quiet closure becomes its **owner** (an ETag-guarded claim with a
  lease). On an instance that saw no other event in the window, a lone change is what it
  most likely is: the owner evaluates at once (or after ``EXFILGUARD_COALESCE_SETTLE_SECONDS``
  when set, default 0: a settle covers the other writes of one burst). Otherwise, inside a
  storm, it waits for the closure to go quiet (``EXFILGUARD_COALESCE_SECONDS``, default 2 s
  with no new event) but never longer than ``EXFILGUARD_COALESCE_MAX_SECONDS`` (default 6 s)
  after the round began, then evaluates once.
- Every other event only counts itself (a generation number) and records who made the
  change, then returns: it is audited as ``coalesced`` and costs no ARM read. An event whose
  change happened (event time) more than a second before an evaluation of the closure began
  reading is covered by that evaluation and counts for nothing (a late delivery).
- After its evaluation the owner looks again: if events came in meanwhile, it runs another
  round; otherwise it lets go.

The evaluation uses the **last writer's identity** (the newest event by event time), so the
alert names who made the latest change and the loop guard remembers the right other writer.
An owner whose instance dies leaves its lease to expire; its own event, unacknowledged, is
redelivered by Event Grid and takes the closure over again, so the changes it had collected
are still evaluated.

Setting ``EXFILGUARD_COALESCE_SECONDS`` to 0 turns coalescing off (every event evaluated).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from exfilguard.adapters.state import State
from exfilguard.core import ids
from exfilguard.core.actor import Actor
from exfilguard.core.settings import CoalesceSettings

CLOCK_MARGIN_S = 1.0  # event times are ARM's clock, ours may differ a little: count as covered only past this
LEASE_MARGIN_S = 120.0  # how long past its waiting an owner may take to evaluate before others take over


def _actor_json(event: Any) -> str:
    c = event.caller
    return json.dumps({"name": c.name, "upn": c.upn, "appId": c.app_id, "objectId": c.object_id,
                       "operation": event.operation_name, "correlationId": event.correlation_id,
                       "eventId": event.event_id, "principalId": event.principal_id,
                       "time": event.time.isoformat() if event.time else ""})


def _newer(event: Any, stored: dict | None) -> bool:
    if not stored:
        return True
    t = stored.get("time") or ""
    mine = event.time.isoformat() if event.time else ""
    return mine >= t


class Turn:
    """An owner's hold on a closure: wait for quiet, evaluate, look again."""

    def __init__(self, store: Coalescer, pk: str, event: Any, lead: bool = False, joined_gen: int = 0) -> None:
        self.store = store
        self.pk = pk
        self.event = event
        self.joined_gen = joined_gen
        self.started_gen = 0
        self.rounds = 0
        self.lead = lead  # an idle instance's first event: evaluated after the short settle only

    def wait_for_quiet(self) -> None:
        """Sleep until no new event for ``window`` seconds, or ``max_wait`` since the round began.
        A leading turn (a quiet instance's first event) only waits ``settle``: a lone change is
        fixed at once, and the changes of one burst that arrive with it are still covered."""
        s = self.store.settings
        if self.lead and self.rounds == 0:
            if s.settle > 0:
                self.store.sleep(s.settle)
                self.started_gen = self.store.start_round(self.pk, self.event.event_id)
            else:
                self.started_gen = self.joined_gen  # the join already began the round
            self.rounds += 1
            return
        began = self.store.clock()
        seen = self.store.generation(self.pk)
        while True:
            left = s.max_wait - (self.store.clock() - began)
            if left <= 0:
                break
            self.store.sleep(min(s.window, left))
            now_gen = self.store.generation(self.pk)
            if now_gen == seen:
                break
            seen = now_gen
        self.started_gen = self.store.start_round(self.pk, self.event.event_id)
        self.rounds += 1

    def latest_event(self) -> Any:
        """The owner's event carrying the last writer's identity (the newest change)."""
        if self.started_gen == self.joined_gen:
            return self.event  # no other event joined: this one is the last writer
        stored = self.store.last_actor(self.pk)
        if not stored or stored.get("eventId") == self.event.event_id:
            return self.event
        when = None
        if stored.get("time"):
            try:
                when = datetime.fromisoformat(stored["time"])
            except ValueError:
                when = None
        return replace(self.event, caller=Actor(name=stored.get("name", ""), upn=stored.get("upn", ""),
                                                app_id=stored.get("appId", ""),
                                                object_id=stored.get("objectId", "")),
                       operation_name=stored.get("operation", "") or self.event.operation_name,
                       correlation_id=stored.get("correlationId", "") or self.event.correlation_id,
                       principal_id=stored.get("principalId", ""), time=when or self.event.time)

    def finish(self) -> bool:
        """Let go if nothing came in since the round began; True when another round is due."""
        return self.store.finish_round(self.pk, self.event.event_id, self.started_gen)


class Coalescer:
    """The ``<prefix>coalesce`` table, one entity per closure root."""

    def __init__(self, state: State, cfg: CoalesceSettings, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.state = state
        self.settings = cfg
        self.table = f"{state.prefix}coalesce"
        self.clock = clock
        self.sleep = sleep

    def _pk(self, resource_id: str) -> str:
        return hashlib.sha256(ids.key(resource_id).encode()).hexdigest()

    def join(self, resource_id: str, event: Any) -> Turn | None:
        """Count this event; a :class:`Turn` when it owns the closure now, None when another
        event's invocation will evaluate it."""
        pk = self._pk(resource_id)
        now = self.clock()
        lease = now + self.settings.max_wait + LEASE_MARGIN_S
        when = event.time.timestamp() if event.time is not None else None
        lead = _idle(self.settings.window)
        at_once = lead and self.settings.settle <= 0  # the round begins with the join itself

        def change(e: dict | None) -> tuple[dict | None, tuple[bool, int]]:
            covered = float((e or {}).get("CoveredUntil") or 0)
            if when is not None and when < covered:
                # The change happened before an evaluation of this closure began reading: that
                # evaluation saw it (a late delivery). Nothing to count, nothing to evaluate;
                # its writer is remembered if it is the newest one known.
                if e is not None and _newer(event, _loads(e.get("LastActor"))):
                    return {**e, "LastActor": _actor_json(event)}, (False, 0)
                return None, (False, 0)
            gen = int((e or {}).get("Gen") or 0) + 1
            stored = _loads((e or {}).get("LastActor"))
            owner = (e or {}).get("Owner") or ""
            until = float((e or {}).get("OwnerUntil") or 0)
            mine = not owner or until < now or owner == event.event_id
            new = {"PartitionKey": pk, "RowKey": "closure", "ResourceId": resource_id[:2048], "Gen": gen,
                   "LastActor": _actor_json(event) if _newer(event, stored) else (e or {}).get("LastActor", ""),
                   "Owner": event.event_id[:256] if mine else owner, "OwnerUntil": lease if mine else until,
                   "StartGen": int((e or {}).get("StartGen") or 0), "CoveredUntil": covered}
            if mine and at_once:
                new.update(StartGen=gen, CoveredUntil=max(covered, now - CLOCK_MARGIN_S))
            return new, (mine, gen)

        owned, gen = self._cas(pk, change)
        return Turn(self, pk, event, lead=lead, joined_gen=gen) if owned else None

    def generation(self, pk: str) -> int:
        e = self.state._get(self.table, pk, "closure")
        return int(e.get("Gen") or 0) if e is not None else 0

    def last_actor(self, pk: str) -> dict | None:
        e = self.state._get(self.table, pk, "closure")
        return _loads(e.get("LastActor")) if e is not None else None

    def start_round(self, pk: str, owner: str) -> int:
        now = self.clock()

        def change(e: dict | None) -> tuple[dict | None, int]:
            if e is None:
                return None, 0
            gen = int(e.get("Gen") or 0)
            new = dict(e)
            new.update(StartGen=gen, Owner=owner[:256], OwnerUntil=now + self.settings.max_wait + LEASE_MARGIN_S,
                       CoveredUntil=max(float(e.get("CoveredUntil") or 0), now - CLOCK_MARGIN_S))
            return new, gen

        return self._cas(pk, change)

    def finish_round(self, pk: str, owner: str, started_gen: int) -> bool:
        def change(e: dict | None) -> tuple[dict | None, bool]:
            if e is None:
                return None, False
            if int(e.get("Gen") or 0) > started_gen:
                return None, True  # more changes came: keep the ownership, run another round
            new = dict(e)
            new.update(Owner="", OwnerUntil=0.0)
            return new, False

        return self._cas(pk, change)

    def _cas(self, pk: str, change: Callable[[dict | None], tuple[dict | None, Any]]) -> Any:
        """One read-modify-write of the closure's entity, ETag-guarded (the state's own)."""
        return self.state.compare_and_swap(self.table, pk, "closure", change)


_last_join: list[float] = []
_idle_lock = threading.Lock()


def _idle(window: float) -> bool:
    """Whether this instance saw no other event within ``window`` seconds (then a new one is
    not part of a storm here, and is evaluated at once). Instance memory is enough: it only
    chooses between fixing now and waiting; the storm's bookkeeping is in storage."""
    now = time.monotonic()
    with _idle_lock:
        idle = not _last_join or now - _last_join[0] >= window
        _last_join[:] = [now]
    return idle


def _loads(text: Any) -> dict | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None

