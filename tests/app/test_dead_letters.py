"""Dead letters replayed (issue: reliability, item 6), from Azurite's Blob container.

Blobs are written as Event Grid dead-letters them (a JSON array of events with the delivery
fields it adds); the timer replays them through the normal event path, audits, deletes;
a blob that keeps failing or cannot be read is moved aside and alerted. ``exfilguard replay
FILE`` does the same by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from azure.functions.timer import TimerRequest
from azure.storage.blob import BlobServiceClient

from tests.function_support import NSG_WEU, REPO, azurite_connection, drift, resource_event, running_app, sample

RULE_OP = "Microsoft.Network/networkSecurityGroups/securityRules/delete"
DENY_RULE = "exfilguard-deny-internet-outbound"


def _dead_lettered(event: dict) -> list[dict]:
    """What Event Grid writes to the dead-letter container for one undeliverable event."""
    return [{**event, "deadLetterReason": "MaxDeliveryAttemptsExceeded", "deliveryAttempts": 30,
             "lastDeliveryOutcome": "Probe failed", "publishTime": event["eventTime"],
             "lastDeliveryAttemptTime": event["eventTime"]}]


def _container(name: str):
    service = BlobServiceClient.from_connection_string(azurite_connection())
    container = service.get_container_client(name)
    if not container.exists():
        container.create_container()
    return container


def _upload(name: str, blob: str, doc) -> None:
    _container(name).upload_blob(blob, json.dumps(doc) if not isinstance(doc, bytes) else doc, overwrite=True)


def _names(name: str) -> list[str]:
    container = _container(name)
    return [b.name for b in container.list_blobs()]


@pytest.fixture
def box() -> str:
    return f"dl-{uuid.uuid4().hex[:12]}"


def _replay(app) -> None:
    app.fns["dead_letter_replay"](TimerRequest(past_due=False))


def test_a_dead_lettered_event_is_replayed_audited_and_deleted(monkeypatch, box):
    with running_app(monkeypatch, sample("compliant-subscription.json"), EXFILGUARD_DEADLETTER_CONTAINER=box) as app:
        app.timer()
        drift(app)
        event = resource_event(RULE_OP, f"{NSG_WEU}/securityRules/deny-internet-out",
                               event_type="Microsoft.Resources.ResourceDeleteSuccess")
        eg = resource_event(RULE_OP, f"{NSG_WEU}/securityRules/x")
        cloud = {"specversion": "1.0", "id": eg["id"], "source": eg["topic"], "subject": eg["subject"],
                 "type": eg["eventType"], "time": eg["eventTime"], "data": eg["data"]}
        blob = f"{app.env['EXFILGUARD_SUBSCRIPTION_ID']}/exfilguard/2026/12/06/23/{uuid.uuid4()}.json"
        _upload(box, blob, _dead_lettered(event))
        _upload(box, "cloudevents/one.json", [cloud])
        _replay(app)
        assert _names(box) == [], "replayed blobs are deleted"
        assert DENY_RULE in {r["name"] for r in app.emulator.get_body(NSG_WEU)["properties"]["securityRules"]}
        decisions = [r.decision for r in app.audit(event["id"])]
        assert "fixed" in decisions and "evaluated" in decisions, decisions
        assert "evaluated" in [r.decision for r in app.audit(eg["id"])]
        replayed = [r for r in app.audit() if r.decision == "dead-letter-replayed"]
        assert len(replayed) == 2 and any(blob in r.detail for r in replayed)
        rows = app.audit()
        deleted_after = max(i for i, r in enumerate(rows) if r.decision == "dead-letter-replayed")
        assert all(i < deleted_after for i, r in enumerate(rows) if r.event_id == event["id"]), \
            "the event's outcome is audited before the blob is let go"


def test_a_dead_letter_that_keeps_failing_is_retried_then_moved_aside_and_alerted(monkeypatch, box):
    with running_app(monkeypatch, sample("compliant-subscription.json"), EXFILGUARD_DEADLETTER_CONTAINER=box,
                     EXFILGUARD_DEADLETTER_MAX_ATTEMPTS="2") as app:
        app.timer()
        app.emulator.add_fault(503, method="GET", path="nsg-ml-westeurope", retry_after=0.01)
        event = resource_event("Microsoft.Network/networkSecurityGroups/write", NSG_WEU)
        _upload(box, "one.json", _dead_lettered(event))
        _replay(app)
        assert _names(box) == ["one.json"], "a transient failure leaves the blob for the next run"
        props = _container(box).get_blob_client("one.json").get_blob_properties()
        assert props.metadata.get("exfilguardattempts") == "1"
        _replay(app)
        assert _names(box) == []
        assert _names(f"{box}-poison") == ["one.json"]
        poison = [r for r in app.audit() if r.decision == "dead-letter-poison"]
        assert len(poison) == 1 and "failed 2 times" in poison[0].outcome
        cards = [json.dumps(p.json()) for p in app.teams.posts()]
        assert any("could not replay a dead-lettered event" in c for c in cards)


def test_an_unreadable_dead_letter_is_moved_aside_at_once(monkeypatch, box):
    with running_app(monkeypatch, EXFILGUARD_DEADLETTER_CONTAINER=box) as app:
        _upload(box, "junk.json", b"{not json")
        _upload(box, "shape.json", [{"id": "x", "data": {}}])  # no eventType: the SDK refuses it
        _replay(app)
        assert sorted(_names(f"{box}-poison")) == ["junk.json", "shape.json"]
        reasons = [r.outcome for r in app.audit() if r.decision == "dead-letter-poison"]
        assert len(reasons) == 2 and any("not JSON" in r for r in reasons)
        assert app.emulator.log == []


def test_an_empty_or_missing_container_is_nothing_to_do(monkeypatch, box):
    with running_app(monkeypatch, EXFILGUARD_DEADLETTER_CONTAINER=box) as app:
        _replay(app)
        assert app.audit() == []


def _cli(app, *args: str) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("EXFILGUARD_")}, **app.env}
    return subprocess.run([sys.executable, "-m", "exfilguard.cli", "replay", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=120)


def test_replay_cli_runs_a_saved_event_through_the_event_path(monkeypatch, tmp_path, box):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        app.timer()
        drift(app)
        event = resource_event(RULE_OP, f"{NSG_WEU}/securityRules/deny-internet-out",
                               event_type="Microsoft.Resources.ResourceDeleteSuccess")
        saved = tmp_path / "event.json"
        saved.write_text(json.dumps(_dead_lettered(event)))
        r = _cli(app, str(saved))
        assert r.returncode == 0, r.stderr
        assert r.stdout.split("\t")[:2] == [event["id"], "evaluated"]
        assert "fixed" in [x.decision for x in app.audit(event["id"])]
        bad = tmp_path / "bad.json"
        bad.write_text("[1]")
        r = _cli(app, str(bad))
        assert r.returncode == 2 and "Traceback" not in r.stderr and "not an event object" in r.stderr
        r = _cli(app, str(tmp_path / "missing.json"))
        assert r.returncode == 2 and "cannot read" in r.stderr
