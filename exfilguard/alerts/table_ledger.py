"""The alert ledger on Azure Table storage, shared by every instance of the Function app.

Layout of table ``exfilguardalerts``:

- open findings: PartitionKey ``open-<subscription>`` (a sweep reads its subscription's
  partition in one query), RowKey the SHA-256 of the dedup key (keys hold ``/``, which RowKeys
  may not);
- pending deliveries: PartitionKey ``pending``, RowKey the delivery ID (time-ordered). The
  rendered message and its finding keys are stored zlib-compressed in binary properties of at
  most 64 KiB each (``Data0``, ``Data1``, ...), since a 500-finding email is bigger than one
  property may be. A claim is an ETag-guarded write of ``ClaimedUntil``.

``azure.data.tables`` is imported when a ledger is created, not when this module is.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from exfilguard.alerts.delivery import Delivery
from exfilguard.alerts.ledger import EPOCH, OpenAlert, in_scope, normalise_scope, subscription_of
from exfilguard.core.findings import Severity

DEFAULT_TABLE = "exfilguardalerts"
PENDING = "pending"
_CHUNK = 60 * 1024
_MAX_CHUNKS = 15  # the entity stays under Table storage's 1 MiB


class LedgerError(RuntimeError):
    pass


def _open_partition(resource_key: str) -> str:
    return f"open-{subscription_of(resource_key) or 'none'}"


def _row_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        return EPOCH
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class TableLedger:
    def __init__(self, table_client: Any) -> None:
        self._table = table_client

    @classmethod
    def from_connection_string(cls, connection_string: str, table_name: str = DEFAULT_TABLE) -> TableLedger:
        from azure.data.tables import TableServiceClient

        service = TableServiceClient.from_connection_string(connection_string)
        return cls(service.create_table_if_not_exists(table_name))

    # open findings -------------------------------------------------------------------------

    @staticmethod
    def _to_open(entity: dict[str, Any]) -> OpenAlert:
        return OpenAlert(
            key=entity["Key"], rule_id=entity["RuleId"], resource_id=entity["ResourceId"],
            severity=Severity(entity["Severity"]), title=entity.get("Title", ""),
            first_alerted=_utc(entity["FirstAlerted"]), last_alerted=_utc(entity["LastAlerted"]),
        )

    def get_open(self, key: str) -> OpenAlert | None:
        from azure.core.exceptions import ResourceNotFoundError

        resource_key = key.split("|", 1)[1] if "|" in key else key
        try:
            return self._to_open(self._table.get_entity(_open_partition(resource_key), _row_key(key)))
        except ResourceNotFoundError:
            return None

    def put_open(self, records: Iterable[OpenAlert]) -> None:
        by_partition: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            pk = _open_partition(r.resource_key)
            by_partition[pk].append({
                "PartitionKey": pk, "RowKey": _row_key(r.key), "Key": r.key, "RuleId": r.rule_id,
                "ResourceId": r.resource_id, "Severity": r.severity.value, "Title": r.title[:1000],
                "FirstAlerted": r.first_alerted, "LastAlerted": r.last_alerted,
            })
        for entities in by_partition.values():
            # one transaction holds at most 100 operations on one partition
            for i in range(0, len(entities), 100):
                self._table.submit_transaction([("upsert", e, {"mode": "replace"}) for e in entities[i:i + 100]])

    def close(self, keys: Iterable[str]) -> None:
        for key in keys:
            resource_key = key.split("|", 1)[1] if "|" in key else key
            self._table.delete_entity(_open_partition(resource_key), _row_key(key))

    def open_in_scope(self, scope: str) -> list[OpenAlert]:
        s = normalise_scope(scope)
        sub = subscription_of(s)
        if sub:
            entities = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": f"open-{sub}"})
        else:
            entities = self._table.query_entities("PartitionKey ge @lo and PartitionKey lt @hi",
                                                  parameters={"lo": "open-", "hi": "open."})
        return [r for r in map(self._to_open, entities) if in_scope(r.resource_key, s)]

    # pending deliveries --------------------------------------------------------------------

    @staticmethod
    def _pack(delivery: Delivery) -> dict[str, bytes]:
        blob = zlib.compress(json.dumps({"payload": delivery.payload, "keys": list(delivery.keys)},
                                        ensure_ascii=False, separators=(",", ":")).encode("utf-8"), 9)
        chunks = [blob[i:i + _CHUNK] for i in range(0, len(blob), _CHUNK)]
        if len(chunks) > _MAX_CHUNKS:
            raise LedgerError(f"delivery {delivery.id} is too large to store ({len(blob)} bytes compressed)")
        return {f"Data{i}": c for i, c in enumerate(chunks)}

    @staticmethod
    def _to_delivery(entity: dict[str, Any]) -> Delivery:
        blob = b"".join(bytes(entity[f"Data{i}"]) for i in range(int(entity["Chunks"])))
        data = json.loads(zlib.decompress(blob).decode("utf-8"))
        last = entity.get("LastAttempt")
        return Delivery(
            id=entity["RowKey"], channel=entity["Channel"], kind=entity["Kind"], payload=data["payload"],
            keys=tuple(data["keys"]), created=_utc(entity["Created"]), rounds=int(entity.get("Rounds", 0)),
            last_error=entity.get("LastError", ""), last_attempt=_utc(last) if last and _utc(last) > EPOCH else None,
        )

    def _state(self, delivery: Delivery, claimed_until: datetime) -> dict[str, Any]:
        return {
            "PartitionKey": PENDING, "RowKey": delivery.id, "Rounds": delivery.rounds,
            "LastError": delivery.last_error[:4000], "LastAttempt": delivery.last_attempt or EPOCH,
            "ClaimedUntil": claimed_until,
        }

    def add_pending(self, delivery: Delivery) -> None:
        data = self._pack(delivery)
        entity = {**self._state(delivery, EPOCH), "Channel": delivery.channel, "Kind": delivery.kind,
                  "Created": delivery.created, "Chunks": len(data), **data}
        self._table.upsert_entity(entity)

    def claim_pending(self, now: datetime, lease: timedelta) -> list[Delivery]:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        claimed = []
        for entity in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": PENDING}):
            if _utc(entity.get("ClaimedUntil")) > now:
                continue
            try:
                self._table.update_entity(
                    {"PartitionKey": PENDING, "RowKey": entity["RowKey"], "ClaimedUntil": now + lease},
                    mode=UpdateMode.MERGE, etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                continue  # another run claimed or finished it first
            claimed.append(self._to_delivery(entity))
        return claimed

    def release_pending(self, delivery: Delivery) -> None:
        from azure.data.tables import UpdateMode

        self._table.update_entity(self._state(delivery, EPOCH), mode=UpdateMode.MERGE)

    def remove_pending(self, delivery_id: str) -> None:
        self._table.delete_entity(PENDING, delivery_id)

    def pending(self) -> list[Delivery]:
        return [self._to_delivery(e)
                for e in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": PENDING})]
