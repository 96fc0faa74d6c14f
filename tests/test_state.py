"""State in Table storage and the sweep queue, against Azurite (real HTTP, real ETags)."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from exfilguard.app.settings import StorageSettings
from exfilguard.state import Actor, AuditEntry, IndexedCompute, IndexedSubnet, State
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


def test_loop_guard_allows_n_then_escalates_once_per_window(state):
    mallory = Actor(caller="Mallory", app_id="app-m", correlation_id="corr-m")
    got = [state.reserve_write(NSG_WEU, max_writes=3, window=WINDOW, actor=mallory, now=T0 + timedelta(minutes=i))
           for i in range(6)]
    assert [r.allowed for r in got] == [True, True, True, False, False, False]
    assert [r.escalate for r in got] == [False, False, False, True, False, False]
    assert got[3].writes_in_window == 3 and got[3].actor.caller == "Mallory"
    # The first write ages out of the window: one slot opens, and the next denial in a new window escalates again.
    later = T0 + timedelta(minutes=10, seconds=30)
    assert state.reserve_write(NSG_WEU, max_writes=3, window=WINDOW, now=later).allowed
    denied = state.reserve_write(NSG_WEU, max_writes=3, window=WINDOW, now=later + timedelta(seconds=1))
    assert not denied.allowed and not denied.escalate, "still within the window of the last escalation"
    much_later = T0 + timedelta(minutes=13, seconds=30)
    again = state.reserve_write(NSG_WEU, max_writes=3, window=WINDOW, now=much_later)
    assert again.allowed  # writes at minutes 1 and 2 aged out


def test_released_slot_is_given_back_and_other_resources_are_independent(state):
    first = state.reserve_write(NSG_WEU, max_writes=1, window=WINDOW, now=T0)
    assert first.allowed
    denied = state.reserve_write(NSG_WEU, max_writes=1, window=WINDOW, now=T0)
    assert not denied.allowed and denied.escalate
    state.release_write(first)
    assert state.reserve_write(NSG_WEU, max_writes=1, window=WINDOW, now=T0 + timedelta(seconds=1)).allowed
    assert state.reserve_write(VNET_WEU, max_writes=1, window=WINDOW, now=T0).allowed
    writes, escalated, actor = state.loop_status(NSG_WEU.upper())
    assert len(writes) == 1 and escalated == T0 and actor is None


def test_concurrent_instances_never_take_more_than_n_slots(state):
    """Two app instances (separate clients) race for the same resource: ETags keep it at N."""
    other = State(state.storage, prefix=state.prefix, queue_name=state.queue_name)
    results = []
    lock = threading.Lock()

    def worker(s: State) -> None:
        r = s.reserve_write(NSG_WEU, max_writes=3, window=WINDOW, now=T0)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=worker, args=(state if i % 2 else other,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.allowed for r in results) == 3
    assert sum(r.escalate for r in results) == 1


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
