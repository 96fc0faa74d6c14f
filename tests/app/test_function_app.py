"""The Function app's shape: cold-start imports, function names and bindings, host.json, settings,
and telemetry through azure-monitor-opentelemetry (with everything sent to loopback only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from exfilguard.adapters import configfile
from exfilguard.core import settings as app_settings
from tests.function_support import REPO, SUB

HEAVY = ("azure.mgmt", "azure.identity", "azure.data.tables", "azure.storage.queue", "azure.storage.blob",
         "azure.eventgrid", "opentelemetry", "rich",
         "azure.monitor")


def _python(code: str, env: dict[str, str] | None = None) -> str:
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("EXFILGUARD_")},
                              **(env or {})})
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_importing_function_app_loads_no_heavy_sdk():
    out = _python(
        "import json, sys; import function_app; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({HEAVY!r}))))",
        {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
         "AzureWebJobsStorage": "UseDevelopmentStorage=true", "EXFILGUARD_SUBSCRIPTION_ID": SUB})
    assert json.loads(out) == []


def _bindings(env: dict[str, str] | None = None) -> dict:
    """The bindings as the host indexes them (raw JSON), imported in a fresh process."""
    out = _python("import json, function_app; print(json.dumps({f.get_function_name(): "
                  "[json.loads(b) for b in f.get_raw_bindings()] for f in function_app.app.get_functions()}))", env)
    return json.loads(out)


def test_functions_and_bindings_are_the_agreed_ones():
    b = _bindings()
    assert sorted(b) == ["alert_retry", "channel_check", "dead_letter_replay", "evaluate", "evaluation_status",
                         "loopguard_release", "on_resource_event", "report", "scheduled_sweep", "sweep_queue"]
    release = b["loopguard_release"][0]
    assert (release["route"], release["methods"], release["authLevel"]) == ("loopguard/release", ["POST"], "FUNCTION")
    assert b["on_resource_event"][0]["type"] == "eventGridTrigger"
    evaluate, status = b["evaluate"][0], b["evaluation_status"][0]
    assert (evaluate["route"], evaluate["methods"], evaluate["authLevel"]) == ("evaluate", ["POST"], "FUNCTION")
    assert (status["route"], status["methods"], status["authLevel"]) == ("evaluate/status/{id}", ["GET"], "FUNCTION")
    page = b["report"][0]
    assert (page["route"], page["methods"], page["authLevel"]) == ("report", ["GET"], "FUNCTION")
    queue = b["sweep_queue"][0]
    assert (queue["type"], queue["queueName"], queue["connection"]) == (
        "queueTrigger", "exfilguard-sweeps", "AzureWebJobsStorage")
    timer = b["scheduled_sweep"][0]
    assert (timer["type"], timer["schedule"]) == ("timerTrigger", "0 0 2 * * *")
    # A failed alert is resent within 15 minutes: every 5 minutes plus at most a 10-minute claim lease.
    assert b["alert_retry"][0]["schedule"] == "0 */5 * * * *"
    assert b["channel_check"][0]["type"] == "timerTrigger"


def test_schedule_and_queue_come_from_settings_when_set():
    b = _bindings({"EXFILGUARD_SWEEP_SCHEDULE": "0 30 1 * * *", "EXFILGUARD_SWEEP_QUEUE": "my-sweeps"})
    assert b["scheduled_sweep"][0]["schedule"] == "%EXFILGUARD_SWEEP_SCHEDULE%"
    assert b["sweep_queue"][0]["queueName"] == "%EXFILGUARD_SWEEP_QUEUE%"


def test_host_json_has_bundle_v4_timeout_logging_and_no_event_grid_retry():
    host = json.loads((REPO / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
    assert host["functionTimeout"] == "00:30:00"
    assert host["logging"]["logLevel"]["Function"] == "Information"
    assert "retry" not in json.dumps(host).lower(), "Event Grid retries belong to the event subscription"
    assert host["extensions"]["queues"]["messageEncoding"] == "base64"
    example = json.loads((REPO / "local.settings.json.example").read_text())["Values"]
    for name in ("EXFILGUARD_SUBSCRIPTION_ID", "EXFILGUARD_MODE", "EXFILGUARD_IDENTITY_CLIENT_ID",
                 "EXFILGUARD_IDENTITY_OBJECT_ID", "EXFILGUARD_ARM_ENDPOINT", "EXFILGUARD_LOOP_MAX_WRITES",
                 "EXFILGUARD_LOOP_WINDOW_MINUTES", "EXFILGUARD_MAX_BODY_BYTES", "EXFILGUARD_SWEEP_SCHEDULE",
                 "AzureWebJobsStorage", "FUNCTIONS_WORKER_RUNTIME"):
        assert name in example, name


# ---------------------------------------------------------------------------------- settings
BASE = {"EXFILGUARD_SUBSCRIPTION_ID": SUB, "AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def test_settings_defaults():
    s = configfile.load(BASE)
    assert (s.loop_max_writes, s.loop_window, s.max_body_bytes) == (3, timedelta(minutes=10), 16384)
    assert s.sweep_queue == "exfilguard-sweeps" and s.state_prefix == "exfilguard"
    assert s.config.mode == "audit"


def test_identity_based_storage_settings():
    s = configfile.load({"EXFILGUARD_SUBSCRIPTION_ID": SUB, "AzureWebJobsStorage__accountName": "stexfil01",
                           "AzureWebJobsStorage__credential": "managedidentity",
                           "AzureWebJobsStorage__clientId": "3C1D5E7F-9A2B-4C6D-8E0F-1A2B3C4D5E6F"})
    assert s.storage.identity_based
    assert s.storage.table_uri == "https://stexfil01.table.core.windows.net"
    assert s.storage.queue_uri == "https://stexfil01.queue.core.windows.net"
    assert s.storage.client_id == "3c1d5e7f-9a2b-4c6d-8e0f-1a2b3c4d5e6f"


@pytest.mark.parametrize(("env", "message"), [
    ({"EXFILGUARD_SUBSCRIPTION_ID": ""}, "EXFILGUARD_SUBSCRIPTION_ID: not set"),
    ({"EXFILGUARD_SUBSCRIPTION_ID": "sub-1"}, "expected a subscription GUID"),
    ({"EXFILGUARD_LOOP_MAX_WRITES": "3O"}, "EXFILGUARD_LOOP_MAX_WRITES: expected a whole number"),
    ({"EXFILGUARD_LOOP_WINDOW_MINUTES": "0"}, "EXFILGUARD_LOOP_WINDOW_MINUTES: expected a whole number from 1"),
    ({"EXFILGUARD_MAX_BODY_BYTES": "10"}, "EXFILGUARD_MAX_BODY_BYTES"),
    ({"EXFILGUARD_IDENTITY_CLIENT_ID": "me"}, "EXFILGUARD_IDENTITY_CLIENT_ID: expected a GUID"),
    ({"EXFILGUARD_SWEEP_QUEUE": "Bad_Queue"}, "EXFILGUARD_SWEEP_QUEUE"),
    ({"EXFILGUARD_MODE": "fix"}, "EXFILGUARD_MODE: expected 'audit' or 'remediate'"),
    ({"AzureWebJobsStorage": ""}, "AzureWebJobsStorage: not set"),
    ({"AzureWebJobsStorage": "", "AzureWebJobsStorage__accountName": "x"}, "is not a storage account name"),
    ({"AzureWebJobsStorage": "", "AzureWebJobsStorage__tableServiceUri": "http://evil.example/",
      "AzureWebJobsStorage__queueServiceUri": "https://q.example/"}, "expected an https:// service URI"),
])
def test_bad_settings_name_the_setting(env, message):
    with pytest.raises(app_settings.SettingsError, match=message):
        configfile.load({**BASE, **env})


# ---------------------------------------------------------------------------------- telemetry
class _Ingestion(BaseHTTPRequestHandler):
    """Accepts whatever the exporter sends; the test reads metrics from an in-memory reader."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"itemsReceived": 0, "itemsAccepted": 0, "errors": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


TELEMETRY_PROBE = """
import json, logging
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from exfilguard.adapters import telemetry
reader = InMemoryMetricReader()
assert telemetry.configure(metric_readers=[reader])
telemetry.findings(["EXF-NSG-01", "EXF-NSG-01", "EXF-SN-02"])
telemetry.fix("applied", ["EXF-NSG-01"])
telemetry.failure("loop-guard")
telemetry.handler_latency("on_resource_event", 12.5, "evaluated")
log = telemetry.get_logger("exfilguard.test")
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)
logging.getLogger("exfilguard").addHandler(Keep())
logging.getLogger("exfilguard").setLevel(logging.INFO)
with telemetry.bound(event_id="evt-9", correlation_id="corr-9"):
    log.info("handled")
points = {}
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for m in sm.metrics:
            for p in m.data.data_points:
                key = m.name + json.dumps(dict(p.attributes), sort_keys=True)
                points[key] = getattr(p, "value", None) if hasattr(p, "value") else p.sum
r = records[0]
print(json.dumps({"points": points, "message": r.getMessage(),
                  "attrs": {k: getattr(r, k) for k in ("exfilguard.event_id", "exfilguard.correlation_id")}}))
"""


def test_metrics_and_structured_logs_go_through_azure_monitor_when_configured():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ingestion)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        local = f"http://127.0.0.1:{server.server_address[1]}/"
        out = _python(TELEMETRY_PROBE, {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                                                     f"IngestionEndpoint={local};LiveEndpoint={local}",
            # Keep every byte on loopback: no statsbeat to Microsoft, no IMDS probe for VM metadata.
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
            "OTEL_TRACES_EXPORTER": "none",
        })
    finally:
        server.shutdown()
        server.server_close()
    doc = json.loads(out.strip().splitlines()[-1])
    points = doc["points"]
    assert points['exfilguard.findings{"rule": "EXF-NSG-01"}'] == 2
    assert points['exfilguard.findings{"rule": "EXF-SN-02"}'] == 1
    assert points['exfilguard.fixes{"outcome": "applied", "rule": "EXF-NSG-01"}'] == 1
    assert points['exfilguard.failures{"kind": "loop-guard"}'] == 1
    assert points['exfilguard.handler.duration{"handler": "on_resource_event", "outcome": "evaluated"}'] == 12.5
    assert doc["message"] == "[event_id=evt-9 correlation_id=corr-9] handled"
    assert doc["attrs"] == {"exfilguard.event_id": "evt-9", "exfilguard.correlation_id": "corr-9"}


def test_without_a_connection_string_telemetry_stays_off_and_light():
    out = _python("import json, sys; from exfilguard.adapters import telemetry; on = telemetry.configure(); "
                  "telemetry.findings(['EXF-NSG-01']); "
                  f"print(json.dumps([on, sorted(m for m in sys.modules if m.startswith({HEAVY!r}))]))",
                  {"APPLICATIONINSIGHTS_CONNECTION_STRING": ""})
    assert json.loads(out) == [False, []]
