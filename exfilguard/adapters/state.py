"""What the Function app remembers between invocations, in Azure Table storage and one queue.

- **Audit log** (``<prefix>audit``): one row per decision (an event dropped, evaluated,
  fixed, blocked by the loop guard...), partitioned by UTC day so a day's trail is one query.
- **Loop guard** (``<prefix>loopguard``): per written resource, the times of recent fix
  writes, when the last escalation went out, and who last changed the resource. One entity
  per resource updated with ETag concurrency, so two instances handling two events about the
  same resource cannot both take the last write slot.
- **Compute index** (``<prefix>index``): compute -> subnet (and workspace), and guarded
  subnet -> NSG / policies, so an NSG event finds the computes behind it without listing
  every compute in the subscription. Events about computes and sweeps keep it current.
- **Sweeps** (``<prefix>sweeps``): status and the final report of asynchronous sweeps, the
  report split over rows because one Table property holds at most 64 KiB.
- **Sweep queue**: requests for asynchronous sweeps; the ``sweep_queue`` function consumes it.
  Messages are base64-encoded, as the Functions host's queue trigger expects by default.

Azure SDK imports happen inside methods: importing this module must stay cheap for the
Function app's cold start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, cast

from exfilguard.core import ids
from exfilguard.core.settings import StorageSettings

if TYPE_CHECKING:
    from azure.data.tables import TableEntity

log = logging.getLogger("exfilguard.state")

MAX_TEXT = 30_000  # characters per string property (the service limit is 64 KiB of UTF-16)
_REPORT_CHUNK = 30_000
_HTML_CHUNK = 60_000  # bytes per binary property (the service limit is 64 KiB)
_HTML_BATCH = 30  # rows per transaction: 30 x 60 KB, base64 on the wire, stays under the 4 MiB batch limit
_CAS_ATTEMPTS = 12
_POPULATED_MEMORY_S = 300.0


# What started a run, as the audit log and the sweep records store it ("http-write": the
# follow-up sweep an HTTP remediation queues).
Trigger = Literal["event", "http", "http-write", "sweep", "timer"]
# The audit log's stable decision words (docs/function-app.md).
AuditDecision = Literal[
    "alert-failed", "alert-resent", "alerted", "backing-off", "channel-check", "coalesced", "dead-letter-poison",
    "dead-letter-replayed", "dropped", "error", "escalated", "evaluated", "exemption-changed", "exemption-expired",
    "exemption-removed", "exemption-set", "fix-accepted", "fix-conflict", "fix-failed", "fix-not-needed",
    "fix-pending", "fixed", "gone", "loop-guard", "loop-guard-released", "malformed", "not-guarded", "own-write",
    "sweep-failed", "sweep-paused", "sweep-queued", "sweep-skipped", "swept"]
SweepState = Literal["queued", "running", "succeeded", "failed"]


class StateError(RuntimeError):
    """Table or queue storage refused or failed; the message names the table and operation."""


def _row(resource_id: str) -> str:
    """A Table key for an ARM ID: IDs hold '/', which keys may not, and can exceed 1 KiB."""
    return hashlib.sha256(ids.key(resource_id).encode()).hexdigest()


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 20] + f"... [{len(text)} chars]"


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def from_iso(value: Any) -> datetime | None:
    """A stored time (an ISO string, or a datetime the table SDK decoded) in UTC; None when absent."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


# ---------------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One decision. ``decision`` is a stable word (see docs/function-app.md); ``outcome`` and
    ``detail`` say what happened in words a person reads in the portal's table browser."""

    trigger: Trigger
    decision: AuditDecision
    resource_id: str = ""
    event_id: str = ""
    correlation_id: str = ""
    event_type: str = ""
    operation: str = ""
    actor: str = ""
    outcome: str = ""
    detail: str = ""
    findings: tuple[dict, ...] = ()
    time: datetime = field(default_factory=_now)

    def to_entity(self) -> dict[str, Any]:
        t = self.time.astimezone(UTC)
        return {
            "PartitionKey": t.strftime("%Y%m%d"),
            "RowKey": f"{t:%H%M%S%f}-{uuid.uuid4().hex[:12]}",
            "Time": t,
            "Trigger": self.trigger,
            "Decision": self.decision,
            "ResourceId": _clip(self.resource_id, 2048),
            "EventId": _clip(self.event_id, 256),
            "CorrelationId": _clip(self.correlation_id, 256),
            "EventType": _clip(self.event_type, 256),
            "Operation": _clip(self.operation, 512),
            "Actor": _clip(self.actor, 512),
            "Outcome": _clip(self.outcome, 2048),
            "Detail": _clip(self.detail),
            "Findings": _clip(json.dumps(list(self.findings), separators=(",", ":"))),
        }

    @classmethod
    def from_entity(cls, e: dict[str, Any]) -> AuditEntry:
        try:
            findings = tuple(json.loads(e.get("Findings") or "[]"))
        except ValueError:  # clipped: keep the row readable rather than fail the query
            findings = ({"clipped": e.get("Findings", "")[:200]},)
        return cls(trigger=cast(Trigger, e.get("Trigger", "")), decision=cast(AuditDecision, e.get("Decision", "")),
                   resource_id=e.get("ResourceId", ""),
                   event_id=e.get("EventId", ""), correlation_id=e.get("CorrelationId", ""),
                   event_type=e.get("EventType", ""), operation=e.get("Operation", ""), actor=e.get("Actor", ""),
                   outcome=e.get("Outcome", ""), detail=e.get("Detail", ""), findings=findings,
                   time=from_iso(e.get("Time")) or _now())


@dataclass(frozen=True, slots=True)
class IndexedCompute:
    compute_id: str
    workspace_id: str
    subnet_id: str


@dataclass(frozen=True, slots=True)
class IndexedSubnet:
    subnet_id: str
    nsg_id: str
    sep_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SweepRecord:
    sweep_id: str
    state: SweepState
    trigger: Trigger
    remediate: bool
    requested: datetime
    started: datetime | None = None
    finished: datetime | None = None
    progress: str = ""
    resources: int = 0
    findings: int = 0
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.sweep_id, "status": self.state, "trigger": self.trigger,
                               "remediate": self.remediate, "requested": _iso(self.requested)}
        if self.started:
            out["started"] = _iso(self.started)
        if self.finished:
            out["finished"] = _iso(self.finished)
        out["progress"] = {"message": self.progress, "resources": self.resources, "findings": self.findings}
        if self.error:
            out["error"] = self.error
        return out


# ---------------------------------------------------------------------------------- storage
class State:
    """All of ExfilGuard's state behind one object; clients are created on first use."""

    def __init__(self, storage: StorageSettings, *, prefix: str = "exfilguard",
                 queue_name: str = "exfilguard-sweeps") -> None:
        self.storage = storage
        self.prefix = prefix
        self.queue_name = queue_name
        self.audit_table = f"{prefix}audit"
        self.index_table = f"{prefix}index"
        self.sweep_table = f"{prefix}sweeps"
        self._service: Any = None
        self._queue: Any = None
        self._tables: dict[str, Any] = {}
        self._existing: set[str] | None = None  # table names (lowercase) known to exist
        self._credential: Any = None
        self._lock = threading.Lock()
        self._populated_at: float | None = None

    # ---- clients -----------------------------------------------------------------------------
    @staticmethod
    def _uri(uri: str | None) -> str:
        """A service URI the settings promised (they require it without a connection string)."""
        if not uri:
            raise StateError("no storage connection string and no service URI configured")
        return uri

    def _storage_credential(self) -> Any:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

            if self.storage.credential == "managedidentity":
                self._credential = ManagedIdentityCredential(client_id=self.storage.client_id)
            else:
                self._credential = DefaultAzureCredential(managed_identity_client_id=self.storage.client_id)
        return self._credential

    def table(self, name: str) -> Any:
        """A table client (created if missing), for state kept by other modules (the alert ledger)."""
        return self._table(name)

    def _table(self, name: str) -> Any:
        with self._lock:
            client = self._tables.get(name)
            if client is not None:
                return client
            from azure.core.exceptions import AzureError
            from azure.data.tables import TableServiceClient

            if self._service is None:
                if self.storage.connection_string:
                    self._service = TableServiceClient.from_connection_string(self.storage.connection_string)
                else:
                    self._service = TableServiceClient(endpoint=self._uri(self.storage.table_uri),
                                                       credential=self._storage_credential())
            try:
                if self._existing is None:
                    self._existing = self._existing_tables()
                if name.lower() in self._existing:
                    client = self._service.get_table_client(name)
                else:
                    client = self._service.create_table_if_not_exists(name)
                    self._existing.add(name.lower())
            except AzureError as exc:
                raise StateError(f"table {name}: cannot create or open it ({_why(exc)})") from exc
            self._tables[name] = client
            return client

    def _existing_tables(self) -> set[str]:
        """This app's tables that exist, in one round trip: a cold instance's first event uses
        six or more of them, and asking to create each (409 when it exists) cost one round trip
        apiece on the way to its decision."""
        lo = self.prefix
        query = "TableName ge @lo and TableName lt @hi" if lo else "TableName ge @lo"
        params = {"lo": lo, "hi": lo + "~"} if lo else {"lo": ""}
        return {t.name.lower() for t in self._service.query_tables(query, parameters=params)}

    def queue(self) -> Any:
        """The sweep queue client (base64 messages, as the queue trigger decodes them)."""
        with self._lock:
            if self._queue is not None:
                return self._queue
            from azure.core.exceptions import AzureError, ResourceExistsError
            from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

            policies: dict[str, Any] = {"message_encode_policy": TextBase64EncodePolicy(),
                        "message_decode_policy": TextBase64DecodePolicy()}
            if self.storage.connection_string:
                q = QueueClient.from_connection_string(self.storage.connection_string, self.queue_name, **policies)
            else:
                q = QueueClient(account_url=self._uri(self.storage.queue_uri), queue_name=self.queue_name,
                                credential=self._storage_credential(), **policies)
            try:
                q.create_queue()
            except ResourceExistsError:
                pass  # the normal case after the first run
            except AzureError as exc:
                raise StateError(f"queue {self.queue_name}: cannot create or open it ({_why(exc)})") from exc
            self._queue = q
            return q

    # ---- audit ---------------------------------------------------------------------------------
    def audit(self, entry: AuditEntry) -> None:
        from azure.core.exceptions import AzureError

        try:
            self._table(self.audit_table).create_entity(entry.to_entity())
        except AzureError as exc:
            raise StateError(f"table {self.audit_table}: cannot record {entry.decision} for "
                             f"{entry.resource_id or entry.event_id} ({_why(exc)})") from exc

    def audit_entries(self, *, event_id: str | None = None, resource_id: str | None = None,
                      day: datetime | None = None) -> list[AuditEntry]:
        """Rows of one UTC day (default today), optionally of one event or resource, oldest first."""
        when = (day or _now()).astimezone(UTC)
        query = "PartitionKey eq @pk"
        params: dict[str, Any] = {"pk": when.strftime("%Y%m%d")}
        if event_id is not None:
            query += " and EventId eq @eid"
            params["eid"] = event_id
        rows = [AuditEntry.from_entity(e) for e in self._query(self.audit_table, query, params)]
        if resource_id is not None:
            k = ids.key(resource_id)
            rows = [r for r in rows if ids.key(r.resource_id) == k]
        return rows

    def _query(self, table: str, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        from azure.core.exceptions import AzureError

        try:
            return list(self._table(table).query_entities(query, parameters=params))
        except AzureError as exc:
            raise StateError(f"table {table}: query failed ({_why(exc)})") from exc

    # ---- loop guard ------------------------------------------------------------------------------
    def _get(self, table: str, pk: str, rk: str) -> TableEntity | None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            return self._table(table).get_entity(pk, rk)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise StateError(f"table {table}: read failed ({_why(exc)})") from exc

    # ---- compute index ---------------------------------------------------------------------------
    def compare_and_swap(self, table: str, pk: str, rk: str, change: Any) -> Any:
        """Read-modify-write one entity with ETag concurrency, retrying when another instance won."""
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        client = self._table(table)
        for _ in range(_CAS_ATTEMPTS):
            current = self._get(table, pk, rk)
            new, result = change(current)
            if new is None:
                return result
            try:
                if current is None:
                    client.create_entity(new)
                else:
                    client.update_entity(new, mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                                         match_condition=MatchConditions.IfNotModified)
                return result
            except (ResourceModifiedError, ResourceExistsError):
                continue  # another instance changed it first: read again
            except AzureError as exc:
                raise StateError(f"table {table}: update failed ({_why(exc)})") from exc
        raise StateError(f"table {table}: entity {pk}/{rk} kept changing; gave up after {_CAS_ATTEMPTS} attempts")

    def index_populated(self) -> bool:
        """Whether a sweep (or a first event) has filled the index. The app never removes the
        marker, and asking costs a Table round trip on the way to every NSG event's fix, so a
        yes is remembered for a few minutes (a no is asked again every time)."""
        if self._populated_at is not None and time.monotonic() - self._populated_at < _POPULATED_MEMORY_S:
            return True
        populated = self._get(self.index_table, "meta", "populated") is not None
        if populated:
            self._populated_at = time.monotonic()
        return populated

    def computes_on(self, subnet_ids: Iterable[str]) -> dict[str, list[IndexedCompute]]:
        """Indexed computes by subnet key, for the given subnets."""
        wanted = {ids.key(s) for s in subnet_ids}
        out: dict[str, list[IndexedCompute]] = {k: [] for k in wanted}
        if not wanted:
            return out
        for e in self._query(self.index_table, "PartitionKey eq 'compute'", {}):
            sk = e.get("SubnetKey", "")
            if sk in wanted:
                out[sk].append(IndexedCompute(e.get("ComputeId", ""), e.get("WorkspaceId", ""),
                                              e.get("SubnetId", "")))
        for v in out.values():
            v.sort(key=lambda c: ids.key(c.compute_id))
        return out

    def computes(self) -> list[IndexedCompute]:
        return [IndexedCompute(e.get("ComputeId", ""), e.get("WorkspaceId", ""), e.get("SubnetId", ""))
                for e in self._query(self.index_table, "PartitionKey eq 'compute'", {})]

    def subnets_attached_to(self, nsg_or_sep_id: str) -> list[IndexedSubnet]:
        """Guarded subnets last seen with this NSG or service endpoint policy attached.

        Used when ARM's back-reference (``properties.subnets`` of the NSG or policy) is
        absent; a scan of the subnet partition, which holds only guarded subnets."""
        k = ids.key(nsg_or_sep_id)
        out = []
        for e in self._query(self.index_table, "PartitionKey eq 'subnet'", {}):
            seps = tuple(_loads(e.get("SepIds")) or ())
            if ids.key(e.get("NsgId", "") or "-") == k or any(ids.key(s) == k for s in seps):
                out.append(IndexedSubnet(e.get("SubnetId", ""), e.get("NsgId", ""), seps))
        return out

    def index_compute(self, compute_id: str, workspace_id: str, subnet_id: str | None) -> None:
        self._upsert(self.index_table, {"PartitionKey": "compute", "RowKey": _row(compute_id),
                                        "ComputeId": compute_id, "WorkspaceId": workspace_id,
                                        "SubnetId": subnet_id or "", "SubnetKey": ids.key(subnet_id or "")})

    def forget_compute(self, compute_id: str) -> None:
        self._delete(self.index_table, "compute", _row(compute_id))

    def note_subnet(self, subnet_id: str, nsg_id: str | None, sep_ids: Sequence[str]) -> None:
        """Remember a guarded subnet's attachments (from a VNet or subnet body just read)."""
        self._upsert(self.index_table, {"PartitionKey": "subnet", "RowKey": _row(subnet_id), "SubnetId": subnet_id,
                                        "NsgId": nsg_id or "", "SepIds": json.dumps(list(sep_ids))})

    def rebuild_index(self, computes: Iterable[IndexedCompute], subnets: Iterable[IndexedSubnet]) -> int:
        """Replace the index with what a full read of the subscription found; returns rows kept."""
        from azure.core.exceptions import AzureError

        client = self._table(self.index_table)
        keep: dict[tuple[str, str], dict[str, Any]] = {}
        for c in computes:
            keep[("compute", _row(c.compute_id))] = {
                "PartitionKey": "compute", "RowKey": _row(c.compute_id), "ComputeId": c.compute_id,
                "WorkspaceId": c.workspace_id, "SubnetId": c.subnet_id or "", "SubnetKey": ids.key(c.subnet_id or "")}
        for s in subnets:
            keep[("subnet", _row(s.subnet_id))] = {"PartitionKey": "subnet", "RowKey": _row(s.subnet_id),
                                                   "SubnetId": s.subnet_id, "NsgId": s.nsg_id or "",
                                                   "SepIds": json.dumps(list(s.sep_ids))}
        try:
            stale = [(e["PartitionKey"], e["RowKey"]) for e in client.list_entities(select=["PartitionKey", "RowKey"])
                     if e["PartitionKey"] in ("compute", "subnet") and (e["PartitionKey"], e["RowKey"]) not in keep]
        except AzureError as exc:
            raise StateError(f"table {self.index_table}: list failed ({_why(exc)})") from exc
        for pk, rk in stale:
            self._delete(self.index_table, pk, rk)
        for entity in keep.values():
            self._upsert(self.index_table, entity)
        self.mark_index_populated()
        return len(keep)

    def mark_index_populated(self) -> None:
        self._upsert(self.index_table, {"PartitionKey": "meta", "RowKey": "populated", "Time": _now()})
        self._populated_at = time.monotonic()

    def _upsert(self, table: str, entity: dict[str, Any]) -> None:
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        try:
            self._table(table).upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise StateError(f"table {table}: write failed ({_why(exc)})") from exc

    def _delete(self, table: str, pk: str, rk: str) -> None:
        from azure.core.exceptions import AzureError

        try:
            self._table(table).delete_entity(pk, rk)  # absent rows are not an error for delete_entity
        except AzureError as exc:
            raise StateError(f"table {table}: delete failed ({_why(exc)})") from exc

    # ---- sweeps --------------------------------------------------------------------------------
    def create_sweep(self, *, trigger: Trigger, remediate: bool, sweep_id: str | None = None) -> SweepRecord:
        record = SweepRecord(sweep_id=sweep_id or uuid.uuid4().hex, state="queued", trigger=trigger,
                             remediate=remediate, requested=_now())
        self._upsert(self.sweep_table, _sweep_entity(record))
        return record

    def update_sweep(self, record: SweepRecord) -> None:
        self._upsert(self.sweep_table, _sweep_entity(record))

    def get_sweep(self, sweep_id: str) -> SweepRecord | None:
        e = self._get(self.sweep_table, "sweep", sweep_id)
        if e is None:
            return None
        return SweepRecord(sweep_id=sweep_id, state=cast(SweepState, e.get("State", "")),
                           trigger=cast(Trigger, e.get("Trigger", "")),
                           remediate=bool(e.get("Remediate")), requested=from_iso(e.get("Requested")) or _now(),
                           started=from_iso(e.get("Started")), finished=from_iso(e.get("Finished")),
                           progress=e.get("Progress", ""), resources=int(e.get("Resources") or 0),
                           findings=int(e.get("Findings") or 0), error=e.get("Error", ""))

    def latest_sweep(self, trigger: Trigger | None = None) -> SweepRecord | None:
        rows = self._query(self.sweep_table, "PartitionKey eq 'sweep'", {})
        records = [r for r in (self.get_sweep(e["RowKey"]) for e in rows) if r is not None
                   and (trigger is None or r.trigger == trigger)]
        return max(records, key=lambda r: r.requested, default=None)

    def store_report(self, sweep_id: str, report: dict[str, Any]) -> None:
        text = json.dumps(report, separators=(",", ":"))
        pk = f"report-{sweep_id}"
        chunks = [text[i:i + _REPORT_CHUNK] for i in range(0, len(text), _REPORT_CHUNK)] or [""]
        for i, chunk in enumerate(chunks):
            self._upsert(self.sweep_table, {"PartitionKey": pk, "RowKey": f"{i:05d}", "Data": chunk})

    def read_report(self, sweep_id: str) -> dict[str, Any] | None:
        rows = self._query(self.sweep_table, "PartitionKey eq @pk", {"pk": f"report-{sweep_id}"})
        if not rows:
            return None
        text = "".join(r.get("Data", "") for r in sorted(rows, key=lambda r: r["RowKey"]))
        return json.loads(text)

    def store_html_report(self, sweep_id: str, page: str) -> None:
        """The sweep's HTML report, next to its JSON report: compressed (a page of thousands of
        workspaces is mostly markup that repeats) and split over binary properties, at most 64
        KiB each, written in batches of one partition; then the pointer ``GET /api/report``
        follows is moved to it, so a reader never finds half a page."""
        from azure.core.exceptions import AzureError

        blob = zlib.compress(page.encode("utf-8"), 6)
        chunks = [blob[i:i + _HTML_CHUNK] for i in range(0, len(blob), _HTML_CHUNK)] or [b""]
        pk = f"html-{sweep_id}"
        ops: list[tuple[str, dict[str, Any]]] = [("upsert", {"PartitionKey": pk, "RowKey": f"{i:05d}", "Data": chunk})
               for i, chunk in enumerate(chunks)]
        ops.append(("upsert", {"PartitionKey": pk, "RowKey": "count", "Chunks": len(chunks),
                               "Bytes": len(blob)}))
        table = self._table(self.sweep_table)
        try:
            for i in range(0, len(ops), _HTML_BATCH):
                table.submit_transaction(ops[i:i + _HTML_BATCH])
        except AzureError as exc:
            raise StateError(f"table {self.sweep_table}: storing the HTML report failed ({_why(exc)})") from exc
        self._upsert(self.sweep_table, {"PartitionKey": "html", "RowKey": "latest", "SweepId": sweep_id,
                                        "Stored": _iso(_now())})

    def latest_html_sweep(self) -> str | None:
        """The sweep whose HTML report was stored last."""
        e = self._get(self.sweep_table, "html", "latest")
        return str(e.get("SweepId")) if e and e.get("SweepId") else None

    def read_html_report(self, sweep_id: str) -> str | None:
        head = self._get(self.sweep_table, f"html-{sweep_id}", "count")
        if head is None:
            return None
        rows = self._query(self.sweep_table, "PartitionKey eq @pk and RowKey ne 'count'", {"pk": f"html-{sweep_id}"})
        n = int(head.get("Chunks") or 0)
        rows = sorted((r for r in rows if r["RowKey"] < f"{n:05d}"), key=lambda r: r["RowKey"])
        if len(rows) != n:
            raise StateError(f"table {self.sweep_table}: HTML report of sweep {sweep_id} is incomplete")
        return zlib.decompress(b"".join(bytes(r.get("Data") or b"") for r in rows)).decode("utf-8")

    def enqueue_sweep(self, message: dict[str, Any]) -> None:
        from azure.core.exceptions import AzureError

        try:
            self.queue().send_message(json.dumps(message, separators=(",", ":")))
        except AzureError as exc:
            raise StateError(f"queue {self.queue_name}: cannot enqueue the sweep ({_why(exc)})") from exc


def _sweep_entity(r: SweepRecord) -> dict[str, Any]:
    return {"PartitionKey": "sweep", "RowKey": r.sweep_id, "State": r.state, "Trigger": r.trigger,
            "Remediate": r.remediate, "Requested": _iso(r.requested),
            "Started": _iso(r.started) if r.started else "", "Finished": _iso(r.finished) if r.finished else "",
            "Progress": _clip(r.progress, 2048), "Resources": r.resources, "Findings": r.findings,
            "Error": _clip(r.error, 4096)}


def _loads(text: Any) -> Any:
    if not isinstance(text, str) or not text:
        return None
    return json.loads(text)


def _why(exc: BaseException) -> str:
    """A one-line reason from an Azure SDK error, without the multi-line service dump."""
    message = getattr(exc, "message", None) or str(exc)
    first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    status = getattr(exc, "status_code", None)
    return f"{status}: {first}" if status else first
