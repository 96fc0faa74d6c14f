"""What the benchmark modules share: events as Event Grid delivers them, the Function app's
settings against the ARM emulator and Azurite, and small statistics.

Everything here talks to loopback only: the ARM emulator (``tests.armemu``) and Azurite
(``scripts/with-azurite.sh`` exports ``AZURITE_CONNECTION_STRING``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests import factory

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
SUB = factory.SUB
AZURITE = "AZURITE_CONNECTION_STRING"

# ExfilGuard's own managed identity (so its fix events are recognised), and the person whose
# change the benchmark reverts.
OWN_CLIENT_ID = "3c1d5e7f-9a2b-4c6d-8e0f-1a2b3c4d5e6f"
OWN_OBJECT_ID = "7e6d5c4b-3a29-4817-9605-f4e3d2c1b0a9"
CALLER = {"name": "Mallory Admin", "upn": "mallory@contoso.example",
          "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "oid": "0f9e8d7c-6b5a-4948-8372-615049382716"}

RG_WEU = "rg-ml-weu"
RG_EUS = "rg-ml-eus"
NSG_WEU = factory.nsg_id(RG_WEU, "nsg-ml-westeurope")
NSG_EUS = factory.nsg_id(RG_EUS, "nsg-ml-eastus")
VNET_WEU = factory.vnet_id(RG_WEU, "vnet-ml-westeurope")
SUBNET_WEU = f"{VNET_WEU}/subnets/snet-training"
SEP_WEU = factory.sep_id(RG_WEU, "sep-ml-westeurope")
WS_WEU = factory.ws_id(RG_WEU, "mlw-westeurope")
COMPUTE_WEU = f"{WS_WEU}/computes/ci-westeurope"

RULE_WRITE = "Microsoft.Network/networkSecurityGroups/securityRules/write"
WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"


def sample(name: str) -> list[dict]:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def resource_event(operation: str, resource_uri: str, *, who: Mapping[str, str] = CALLER,
                   event_type: str = WRITE_SUCCESS) -> dict[str, Any]:
    """A subscription system-topic event in Event Grid schema, as Azure sends it for an ARM write."""
    claims = {"aud": "https://management.core.windows.net/", "ver": "1.0", "appidacr": "2",
              "appid": who["appid"], "http://schemas.microsoft.com/identity/claims/objectidentifier": who["oid"],
              "name": who["name"], "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": who["upn"]}
    return {
        "id": str(uuid.uuid4()),
        "topic": f"/subscriptions/{SUB}",
        "subject": resource_uri,
        "eventType": event_type,
        "eventTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "dataVersion": "2",
        "metadataVersion": "1",
        "data": {
            "authorization": {"scope": resource_uri, "action": operation,
                              "evidence": {"role": "Network Contributor", "principalId": who["oid"]}},
            "claims": claims,
            "correlationId": str(uuid.uuid4()),
            "resourceProvider": operation.split("/", 1)[0],
            "resourceUri": resource_uri,
            "operationName": operation,
            "status": "Succeeded",
            "subscriptionId": SUB,
            "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        },
    }


def delivered(body: Mapping[str, Any]) -> Any:
    """What the Functions Python worker hands ``on_resource_event`` for one Event Grid delivery."""
    from azure.functions import meta
    from azure.functions.eventgrid import EventGridEventInConverter

    return EventGridEventInConverter.decode(meta.Datum(json.dumps(body), "json"), trigger_metadata={})


def app_settings(arm_url: str, storage: str, *, mode: str = "remediate", prefix: str | None = None) -> dict[str, str]:
    """The Function app's settings for one measurement: its own state tables (fresh prefix)."""
    suffix = prefix or f"b{uuid.uuid4().hex[:10]}"
    return {
        "AzureWebJobsStorage": storage,
        "EXFILGUARD_SUBSCRIPTION_ID": SUB,
        "EXFILGUARD_ARM_ENDPOINT": arm_url,
        "EXFILGUARD_MODE": mode,
        "EXFILGUARD_IDENTITY_CLIENT_ID": OWN_CLIENT_ID,
        "EXFILGUARD_IDENTITY_OBJECT_ID": OWN_OBJECT_ID,
        "EXFILGUARD_STATE_PREFIX": suffix,
        "EXFILGUARD_SWEEP_QUEUE": f"{suffix}-sweeps",
    }


_APP_PREFIXES = ("EXFILGUARD_", "AzureWebJobsStorage", "APPLICATIONINSIGHTS_")


def use_settings(settings: Mapping[str, str]) -> None:
    """Make ``settings`` the process's app settings (the Function app reads os.environ)."""
    for k in list(os.environ):
        if k.startswith(_APP_PREFIXES):
            del os.environ[k]
    os.environ.update(settings)


def storage_connection() -> str:
    conn = os.environ.get(AZURITE, "").strip()
    if not conn:
        raise SystemExit(f"bench: {AZURITE} is not set; run under scripts/with-azurite.sh (make bench does)")
    return conn


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=False).stdout.strip()
    except OSError:
        commit = ""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "load_average_at_start": [round(x, 2) for x in load],
    }


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a measured child process: no app settings leaking in from this
    process, bytecode caches used (never -B / PYTHONDONTWRITEBYTECODE), no import tracing."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_APP_PREFIXES) and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME",
                                                            "PYTHONMALLOC", "PYTHONDEVMODE", "PYTHONTRACEMALLOC")}
    env.update(extra or {})
    return env
