"""What makes sweeps finish: one at a time, resumable, and never reading a version twice.

- **The lease** (``<prefix>sweeplease``, one entity): the sweep that holds it runs; any other
  asks get ``409`` (HTTP) or are skipped (timer). The holder renews it as it progresses; a
  lease left to expire means the instance running that sweep died, and the sweep is then
  marked failed (whoever looks next: a new sweep, or the status endpoint), so no sweep stays
  "running" forever.
- **Checked environment versions** (``<prefix>envchecked``): an environment version never
  changes once written, so one read is enough for ever. Each version read by a sweep is
  recorded with its body, partitioned by workspace (one batch per workspace); later sweeps
  use the record and read only versions that appeared since. This is also the checkpoint of
  a sweep cut off by its deadline: the next run skips what the last one checked.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from exfilguard.adapters.state import MAX_TEXT, State, StateError, _why
from exfilguard.core import ids

DEFAULT_LEASE_S = 20 * 60.0
"""A lease outlives the sweep's deadline (13 minutes by default) with room to store the report."""


def _h(text: str) -> str:
    return hashlib.sha256(ids.key(text).encode()).hexdigest()


@dataclass(frozen=True)
class Lease:
    holder: str  # sweep ID
    until: float  # epoch seconds
    expired: bool


class SweepLease:
    def __init__(self, state: State, *, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.table = f"{state.prefix}sweeplease"
        self.clock = clock

    def current(self) -> Lease | None:
        e = self.state._get(self.table, "lease", "sweep")
        if not e or not e.get("Holder"):
            return None
        until = float(e.get("Until") or 0)
        return Lease(e["Holder"], until, until <= self.clock())

    def acquire(self, sweep_id: str, seconds: float | None = None) -> tuple[bool, Lease | None]:
        """(True, previous) when ``sweep_id`` holds the lease now (taken, renewed, or taken over
        from an expired holder: ``previous`` names it); (False, holder) when another live sweep holds it."""
        now = self.clock()
        seconds = DEFAULT_LEASE_S if seconds is None else seconds

        def change(e: dict | None) -> tuple[dict | None, tuple[bool, Lease | None]]:
            holder = (e or {}).get("Holder") or ""
            until = float((e or {}).get("Until") or 0)
            if holder and holder != sweep_id and until > now:
                return None, (False, Lease(holder, until, False))
            previous = Lease(holder, until, True) if holder and holder != sweep_id else None
            return {"PartitionKey": "lease", "RowKey": "sweep", "Holder": sweep_id, "Until": now + seconds}, \
                (True, previous)

        return self.state.compare_and_swap(self.table, "lease", "sweep", change)

    def release(self, sweep_id: str) -> None:
        def change(e: dict | None) -> tuple[dict | None, None]:
            if not e or e.get("Holder") != sweep_id:
                return None, None
            return {"PartitionKey": "lease", "RowKey": "sweep", "Holder": "", "Until": 0.0}, None

        self.state.compare_and_swap(self.table, "lease", "sweep", change)


class CheckedVersions:
    """Environment versions already read, with their bodies."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.table = f"{state.prefix}envchecked"

    def load(self) -> dict[str, dict[str, Any]]:
        """Every checked version: ID key -> body (one scan, a few pages for tens of thousands)."""
        from azure.core.exceptions import AzureError

        out: dict[str, dict[str, Any]] = {}
        try:
            for e in self.state._table(self.table).list_entities(select=["VersionId", "Body"]):
                try:
                    body = json.loads(e.get("Body") or "")
                except ValueError:
                    continue  # clipped or damaged: read the version again
                if isinstance(body, dict):
                    out[ids.key(e.get("VersionId", ""))] = body
        except AzureError as exc:
            raise StateError(f"table {self.table}: list failed ({_why(exc)})") from exc
        return out

    def record(self, workspace_id: str, bodies: Iterable[dict[str, Any]]) -> None:
        """Remember versions of one workspace, in batches of 100 (one Table transaction each)."""
        from azure.core.exceptions import AzureError

        pk = _h(workspace_id)[:32]
        ops = []
        for b in bodies:
            text = json.dumps(b, separators=(",", ":"))
            if len(text) > MAX_TEXT:
                continue  # too big to keep: it is read again next time, which is only slower
            ops.append(("upsert", {"PartitionKey": pk, "RowKey": _h(b["id"]), "VersionId": b["id"][:2048],
                                   "Body": text}))
        client = self.state._table(self.table)
        for i in range(0, len(ops), 100):
            try:
                client.submit_transaction(ops[i:i + 100])
            except AzureError as exc:
                raise StateError(f"table {self.table}: batch write failed ({_why(exc)})") from exc
