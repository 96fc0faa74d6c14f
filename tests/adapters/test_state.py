"""State in Table storage and the sweep queue, against Azurite (real HTTP, real ETags)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from exfilguard.adapters.state import AuditEntry, IndexedCompute, IndexedSubnet, State
from exfilguard.core.settings import StorageSettings
from tests.function_support import NSG_WEU, VNET_WEU, WS_WEU, azurite_connection

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=10)
SUBNET = f"{VNET_WEU}/subnets/snet-training"
SEP = NSG_WEU.replace("networkSecurityGroups/nsg-ml-westeurope", "serviceEndpointPolicies/sep-ml-westeurope")


@pytest.fixture
def state() -> State:
    suffix = uuid.uuid4().hex[:10]
    return State(StorageSettings(connection_string=azurite_connection()), prefix=f"s{suffix}",
                 queue_name=f"s-{suffix}")


def test_audit_rows_round_trip_and_are_found_by_event_and_resource(state):
    entry = AuditEntry(trigger="event", decision="fixed", resource_id=NSG_WEU, event_id="e-1", correlation_id="c-1",
                       event_type="Microsoft.Resources.ResourceWriteSuccess",
                       operation="Microsoft.Network/networkSecurityGroups/securityRules/write", actor="Mallory",
                       outcome="applied", detail="x" * 40_000,
                       findings=({"ruleId": "EXF-NSG-01", "resourceId": NSG_WEU},))
    state.audit(entry)
    state.audit(AuditEntry(trigger="event", decision="dropped", event_id="e-2", outcome="unmapped"))
    rows = state.audit_entries(event_id="e-1")
    assert len(rows) == 1
    got = rows[0]
    assert (got.decision, got.resource_id, got.correlation_id, got.actor, got.outcome) == (
        "fixed", NSG_WEU, "c-1", "Mallory", "applied")
    assert got.findings == ({"ruleId": "EXF-NSG-01", "resourceId": NSG_WEU},)
    assert len(got.detail) < 32_000 and got.detail.endswith("[40000 chars]")
    assert [r.event_id for r in state.audit_entries(resource_id=NSG_WEU.upper())] == ["e-1"]
    assert {r.event_id for r in state.audit_entries()} == {"e-1", "e-2"}


def test_compute_index_answers_by_subnet_and_by_attachment(state):
    assert not state.index_populated()
    ci = f"{WS_WEU}/computes/ci-1"
    cluster = f"{WS_WEU}/computes/cluster-1"
    state.index_compute(ci, WS_WEU, SUBNET)
    state.index_compute(cluster, WS_WEU, SUBNET.upper())
    state.index_compute(f"{WS_WEU}/computes/no-subnet", WS_WEU, None)
    by_subnet = state.computes_on([SUBNET, f"{VNET_WEU}/subnets/other"])
    assert sorted(c.compute_id for c in by_subnet[SUBNET.lower()]) == [ci, cluster]
    assert by_subnet[f"{VNET_WEU}/subnets/other".lower()] == []
    state.forget_compute(ci.upper())
    assert [c.compute_id for c in state.computes_on([SUBNET])[SUBNET.lower()]] == [cluster]

    state.note_subnet(SUBNET, NSG_WEU, [SEP])
    assert [s.subnet_id for s in state.subnets_attached_to(NSG_WEU.upper())] == [SUBNET]
    assert [s.subnet_id for s in state.subnets_attached_to(SEP)] == [SUBNET]
    assert state.subnets_attached_to(NSG_WEU.replace("westeurope", "eastus")) == []


def test_rebuild_replaces_the_whole_index_and_marks_it_populated(state):
    state.index_compute(f"{WS_WEU}/computes/gone", WS_WEU, SUBNET)
    state.note_subnet(f"{VNET_WEU}/subnets/gone", NSG_WEU, [])
    kept = state.rebuild_index([IndexedCompute(f"{WS_WEU}/computes/ci", WS_WEU, SUBNET)],
                               [IndexedSubnet(SUBNET, NSG_WEU, (SEP,))])
    assert kept == 2 and state.index_populated()
    assert [c.compute_id for c in state.computes()] == [f"{WS_WEU}/computes/ci"]
    assert [s.subnet_id for s in state.subnets_attached_to(NSG_WEU)] == [SUBNET]


def test_sweep_records_and_large_reports_round_trip(state):
    record = state.create_sweep(trigger="http", remediate=False)
    assert state.get_sweep(record.sweep_id).state == "queued"
    report = {"schemaVersion": 1, "findings": [{"detail": "d" * 1000, "i": i} for i in range(120)]}
    state.store_report(record.sweep_id, report)
    assert state.read_report(record.sweep_id) == report
    assert state.read_report(uuid.uuid4().hex) is None
    assert state.latest_sweep("http").sweep_id == record.sweep_id
    assert state.latest_sweep("timer") is None


def test_sweep_messages_are_base64_as_the_queue_trigger_expects(state):
    from azure.storage.queue import QueueClient

    state.enqueue_sweep({"sweepId": "a" * 32, "whatIf": True})
    plain = QueueClient.from_connection_string(azurite_connection(), state.queue_name)
    raw = next(iter(plain.receive_messages()))
    assert json.loads(base64.b64decode(raw.content)) == {"sweepId": "a" * 32, "whatIf": True}
