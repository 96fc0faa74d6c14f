"""Running the Function app's functions the way the Functions host does, against real stand-ins.

- Storage is Azurite (``scripts/with-azurite.sh`` exports ``AZURITE_CONNECTION_STRING``); a
  test needing it fails, never skips, when it is missing. Every test gets its own table
  prefix and queue name, so tests do not see each other's state.
- ARM is the loopback emulator (``tests/armemu``); Teams is a loopback receiver.
- Functions are looked up in ``function_app.app.get_functions()`` and called with the same
  ``azure.functions`` objects the Python worker builds. Event Grid payloads go through the
  worker's own converter, so CloudEvents arrive as ``func.CloudEvent`` exactly as deployed.
- The queue trigger cannot fire without a Functions host: tests receive the message the HTTP
  handler put on the Azurite queue and call ``sweep_queue`` with it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.timer import TimerRequest

from exfilguard.core import ids
from tests import factory
from tests.alerts_support.receivers import LoopbackReceiver
from tests.armemu import ArmEmulator

REPO = Path(__file__).resolve().parent.parent
EVENTGRID_FIXTURES = REPO / "tests" / "data" / "azure" / "eventgrid"
SAMPLES = REPO / "samples"

AZURITE = "AZURITE_CONNECTION_STRING"
SUB = factory.SUB
OWN_CLIENT_ID = "3c1d5e7f-9a2b-4c6d-8e0f-1a2b3c4d5e6f"
OWN_OBJECT_ID = "7e6d5c4b-3a29-4817-9605-f4e3d2c1b0a9"
MALLORY = {"name": "Mallory Admin", "upn": "mallory@contoso.example", "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
           "oid": "0f9e8d7c-6b5a-4948-8372-615049382716"}

RG = "rg-ml-weu"
NSG_WEU = factory.nsg_id(RG, "nsg-ml-westeurope")
VNET_WEU = factory.vnet_id(RG, "vnet-ml-westeurope")
WS_WEU = factory.ws_id(RG, "mlw-westeurope")


def azurite_connection() -> str:
    conn = os.environ.get(AZURITE, "").strip()
    if not conn:
        pytest.fail(f"{AZURITE} is not set: run the tests under scripts/with-azurite.sh (make test does)")
    return conn


def sample(name: str) -> list[dict]:
    return json.loads((SAMPLES / name).read_text())


def snapshot_scan(bodies: list[dict], tmp_path: Path, config: Any = None) -> list[dict]:
    """``exfilguard scan --snapshot`` on these bodies: its findings as report JSON, sorted."""
    from exfilguard.adapters import snapshot as snapshot_mod
    from exfilguard.core.config import Config
    from exfilguard.core.engine import evaluate

    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(bodies))
    found = [f.to_json() for f in evaluate(snapshot_mod.load(path), config or Config()).findings]
    return sorted_findings(found)


def sorted_findings(findings: list[dict]) -> list[dict]:
    return sorted(findings, key=lambda f: (f["ruleId"], f["resourceId"].lower()))


@functools.cache
def functions() -> dict[str, Callable[..., Any]]:
    """The user functions by their Functions name, as the host indexes them (once per
    process: ``get_functions()`` refuses to index the same app twice)."""
    import function_app

    return {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}


def as_delivered(body: dict) -> Any:
    """What the Python worker hands the function for one Event Grid delivery of ``body``."""
    return EventGridEventInConverter.decode(meta.Datum(json.dumps(body), "json"), trigger_metadata={})


def claims(who: dict[str, str]) -> dict[str, str]:
    out = {"aud": "https://management.core.windows.net/", "ver": "1.0", "appidacr": "2"}
    if who.get("appid"):
        out["appid"] = who["appid"]
    if who.get("oid"):
        out["http://schemas.microsoft.com/identity/claims/objectidentifier"] = who["oid"]
    if who.get("name"):
        out["name"] = who["name"]
    if who.get("upn"):
        out["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"] = who["upn"]
    return out


OWN = {"appid": OWN_CLIENT_ID, "oid": OWN_OBJECT_ID}


def drift(app, nsg_id: str = NSG_WEU) -> None:
    """Someone deletes the deny-internet rule from the NSG (in the emulator, as ARM would hold it)."""
    body = app.emulator.get_body(nsg_id)
    body["properties"]["securityRules"] = [r for r in body["properties"]["securityRules"]
                                           if r["name"] != "deny-internet-out"]
    body["properties"].pop("defaultSecurityRules", None)
    app.emulator.set_body(nsg_id, body)


def keep_reverting(app, resource_id: str = NSG_WEU) -> None:
    """Another automation (a pipeline) puts the resource as it is now back right after every
    ExfilGuard write to it: the writer the loop guard exists for."""
    kept = app.emulator.get_body(resource_id)

    def revert(written_id: str, body: Any) -> None:
        if body is not None and ids.key(written_id) == ids.key(resource_id):
            app.emulator.set_body(resource_id, copy.deepcopy(kept))

    app.emulator.on_write(revert)


def resource_event(operation: str, resource_uri: str, *, who: dict[str, str] | None = None,
                   event_type: str = "Microsoft.Resources.ResourceWriteSuccess",
                   event_id: str | None = None) -> dict:
    """A subscription system-topic event in Event Grid schema, shaped like the docs' sample."""
    template = json.loads((EVENTGRID_FIXTURES / "spec_ResourceWriteSuccess.eventgrid-schema.json").read_text())
    body = copy.deepcopy(template)
    body["id"] = event_id or str(uuid.uuid4())
    body["eventType"] = event_type
    body["subject"] = resource_uri
    body["topic"] = f"/subscriptions/{SUB}"
    body["eventTime"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    data = body["data"]
    data["operationName"] = operation
    data["resourceUri"] = resource_uri
    data["resourceProvider"] = operation.split("/", 1)[0]
    data["subscriptionId"] = SUB
    data["correlationId"] = str(uuid.uuid4())
    data["authorization"] = {"scope": resource_uri, "action": operation,
                             "evidence": {"role": "Network Contributor",
                                          "principalId": (who or MALLORY).get("oid", "")}}
    data["claims"] = claims(who or MALLORY)
    return body


@dataclass
class RunningApp:
    emulator: ArmEmulator
    env: dict[str, str]
    teams: LoopbackReceiver
    fns: dict[str, Callable[..., Any]] = field(default_factory=functions)

    @property
    def services(self) -> Any:
        from exfilguard.flows.runtime import services

        return services()

    @property
    def state(self) -> Any:
        return self.services.state

    def deliver(self, body: dict) -> None:
        """One Event Grid delivery to ``on_resource_event``."""
        self.fns["on_resource_event"](as_delivered(body))

    def post(self, body: bytes | str | dict, *, url: str = "http://localhost:7071/api/evaluate",
             headers: dict[str, str] | None = None) -> tuple[int, dict]:
        raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        req = func.HttpRequest("POST", url, headers={"Content-Type": "application/json", **(headers or {})},
                               body=raw)
        resp = self.fns["evaluate"](req)
        return resp.status_code, json.loads(resp.get_body())

    def status(self, sweep_id: str) -> tuple[int, dict, dict]:
        req = func.HttpRequest("GET", f"http://localhost:7071/api/evaluate/status/{sweep_id}", body=b"",
                               route_params={"id": sweep_id})
        resp = self.fns["evaluation_status"](req)
        return resp.status_code, json.loads(resp.get_body()), dict(resp.headers)

    def run_queued_sweeps(self) -> int:
        """Stand in for the host's queue listener: hand each queued message to ``sweep_queue``."""
        q = self.state.queue()
        n = 0
        for m in q.receive_messages(messages_per_page=32):
            self.fns["sweep_queue"](func.QueueMessage(id=m.id, body=m.content.encode(), pop_receipt=m.pop_receipt))
            q.delete_message(m)
            n += 1
        return n

    def timer(self) -> None:
        self.fns["scheduled_sweep"](TimerRequest(past_due=False))

    def audit(self, event_id: str | None = None) -> list[Any]:
        return self.state.audit_entries(event_id=event_id)

    def escalations(self, stage: str | None = None) -> list[dict]:
        """Loop-guard escalations posted to Teams: ``held`` (fixing stopped), ``backing-off``, or both."""
        marks = {"held": ("Fix loop stopped on",), "backing-off": (": backing off",),
                 None: ("Fix loop stopped on", ": backing off")}[stage]
        return [p.json() for p in self.teams.posts() if any(m in json.dumps(p.json()) for m in marks)]


@contextlib.contextmanager
def running_app(monkeypatch: pytest.MonkeyPatch, resources: list[dict] | None = None, *,
                mode: str = "remediate", **settings: str) -> Iterator[RunningApp]:
    """The app configured against a fresh emulator, fresh state names in Azurite, and a Teams stand-in."""
    conn = azurite_connection()
    for k in list(os.environ):
        if k.startswith(("EXFILGUARD_", "AzureWebJobsStorage", "APPLICATIONINSIGHTS_")):
            monkeypatch.delenv(k, raising=False)
    suffix = uuid.uuid4().hex[:10]
    with ArmEmulator(resources or []) as emulator, LoopbackReceiver() as teams:
        env = {
            "AzureWebJobsStorage": conn,
            "EXFILGUARD_SUBSCRIPTION_ID": SUB,
            "EXFILGUARD_ARM_ENDPOINT": emulator.url,
            "EXFILGUARD_MODE": mode,
            "EXFILGUARD_IDENTITY_CLIENT_ID": OWN_CLIENT_ID,
            "EXFILGUARD_IDENTITY_OBJECT_ID": OWN_OBJECT_ID,
            "EXFILGUARD_STATE_PREFIX": f"t{suffix}",
            "EXFILGUARD_SWEEP_QUEUE": f"t-{suffix}",
            "EXFILGUARD_TEAMS_WEBHOOK_URL": f"{teams.base_url}/workflows/teams",
            "EXFILGUARD_HTTP_ENDPOINT": "https://exfilguard-test.azurewebsites.net",
            # One event, one evaluation, at once: the coalescing window is for storms, and the
            # tests of storms (test_storms.py) turn it on.
            "EXFILGUARD_COALESCE_SECONDS": "0",
            **settings,
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        yield RunningApp(emulator=emulator, env=env, teams=teams)
