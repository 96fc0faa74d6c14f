"""The ledger contract, run on MemoryLedger and on TableLedger against Azurite.

The suite runs under scripts/with-azurite.sh, which exports AZURITE_CONNECTION_STRING. Without
it the Table cases fail (never skip): a green run must mean the Table code was exercised.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from exfilguard.alerts.content import digest_content
from exfilguard.alerts.delivery import Delivery, new_delivery_id
from exfilguard.alerts.ledger import MemoryLedger, OpenAlert
from exfilguard.alerts.mail import email_payload
from exfilguard.alerts.message import alert_key
from exfilguard.alerts.table_ledger import TableLedger
from exfilguard.core.findings import Severity
from tests.alerts_support.samples import COMPUTE, NOW, NSG, RG, SUB, many_alerts

OTHER_SUB = "99999999-8888-7777-6666-555555555555"


def azurite_connection_string() -> str:
    value = os.environ.get("AZURITE_CONNECTION_STRING", "")
    if not value:
        pytest.fail("AZURITE_CONNECTION_STRING is not set: run the tests under scripts/with-azurite.sh "
                    "(make test does), e.g. scripts/with-azurite.sh .venv/bin/python -m pytest tests/", pytrace=False)
    return value


def new_table_ledger() -> TableLedger:
    return TableLedger.from_connection_string(azurite_connection_string(), f"alerts{uuid.uuid4().hex[:16]}")


@pytest.fixture(params=["memory", "table"])
def ledger(request):
    return MemoryLedger() if request.param == "memory" else new_table_ledger()


def record(resource_id: str, rule: str = "EXF-NSG-01", *, at=NOW) -> OpenAlert:
    return OpenAlert(key=alert_key(rule, resource_id), rule_id=rule, resource_id=resource_id,
                     severity=Severity.HIGH, title="t", first_alerted=at, last_alerted=at)


def delivery(payload: dict | None = None, *, kind: str = "alert", keys=("K1",)) -> Delivery:
    return Delivery(id=new_delivery_id(NOW), channel="teams", kind=kind, payload=payload or {"type": "message"},
                    keys=tuple(keys), created=NOW)


def test_open_records_round_trip_and_close(ledger):
    r = record(NSG)
    assert ledger.get_open(r.key) is None
    ledger.put_open([r])
    got = ledger.get_open(r.key)
    assert got == r
    later = replace(r, last_alerted=NOW + timedelta(hours=3))
    ledger.put_open([later])
    assert ledger.get_open(r.key).last_alerted == NOW + timedelta(hours=3)
    assert ledger.get_open(r.key).first_alerted == NOW
    ledger.close([r.key])
    assert ledger.get_open(r.key) is None
    ledger.close([r.key])  # closing twice is harmless


def test_open_in_scope_by_subscription_and_by_resource_prefix(ledger):
    other = f"/subscriptions/{OTHER_SUB}/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n"
    ledger.put_open([record(NSG), record(COMPUTE, "EXF-CMP-02"), record(other)])
    assert {r.resource_id for r in ledger.open_in_scope(SUB)} == {NSG, COMPUTE}
    assert {r.resource_id for r in ledger.open_in_scope(f"/subscriptions/{SUB.upper()}")} == {NSG, COMPUTE}
    workspace_prefix = COMPUTE.rsplit("/computes/", 1)[0].upper()
    assert [r.resource_id for r in ledger.open_in_scope(workspace_prefix)] == [COMPUTE]
    assert [r.resource_id for r in ledger.open_in_scope(OTHER_SUB)] == [other]


def test_more_than_one_transaction_of_open_records(ledger):
    records = [record(f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-{i}") for i in range(130)]
    ledger.put_open(records)
    assert len(ledger.open_in_scope(SUB)) == 130


def test_pending_claim_release_remove(ledger):
    d1, d2 = delivery(keys=("A",)), delivery(keys=("B",))
    ledger.add_pending(d1)
    ledger.add_pending(d2)
    claimed = ledger.claim_pending(NOW, timedelta(minutes=10))
    assert sorted(d.keys for d in claimed) == [("A",), ("B",)]
    assert ledger.claim_pending(NOW + timedelta(minutes=1), timedelta(minutes=10)) == []  # still leased
    ledger.release_pending(replace(d1, rounds=2, last_error="HTTP 500", last_attempt=NOW))
    again = ledger.claim_pending(NOW + timedelta(minutes=1), timedelta(minutes=10))
    assert [(d.id, d.rounds, d.last_error) for d in again] == [(d1.id, 2, "HTTP 500")]
    ledger.remove_pending(d2.id)
    expired = ledger.claim_pending(NOW + timedelta(minutes=30), timedelta(minutes=10))
    assert [d.id for d in expired] == [d1.id]  # d2 gone; d1's lease ran out
    assert [d.id for d in ledger.pending()] == [d1.id]


def test_large_email_delivery_survives_storage(ledger):
    alerts = many_alerts(500)
    payload = email_payload(digest_content(alerts), ("ml-team@contoso.com",))
    assert len(payload["html"]) > 64 * 1024  # bigger than one Table property
    d = delivery(payload, kind="digest", keys=tuple(a.key for a in alerts))
    ledger.add_pending(d)
    (back,) = ledger.pending()
    assert back.payload == payload and back.keys == d.keys and back.created == NOW


def test_two_table_ledgers_never_claim_the_same_delivery():
    name = f"alerts{uuid.uuid4().hex[:16]}"
    a = TableLedger.from_connection_string(azurite_connection_string(), name)
    b = TableLedger.from_connection_string(azurite_connection_string(), name)
    for i in range(5):
        a.add_pending(delivery(keys=(f"K{i}",)))
    first = a.claim_pending(NOW, timedelta(minutes=10))
    second = b.claim_pending(NOW, timedelta(minutes=10))
    assert len(first) == 5 and second == []
