"""Fresh-process measurements: the cold import of ``function_app`` and the first decision.

Both run in child processes started with the venv's interpreter from the repository root,
as the Functions host runs the app: bytecode compiled beforehand (``compileall``, as a
deployment package is built), no ``-B``, no import tracing. The child side of this module
(a ``python -c`` script) imports nothing but the standard library before it imports the
app, so what is measured is the app's own cost.

- cold import: ``time.perf_counter()`` around ``import function_app`` in the child; the
  median over ``runs`` processes after one unmeasured warm-up (which also makes sure the
  bytecode caches exist).
- first decision: the child imports the app, indexes its functions (``get_functions()``, as
  the host does), then handles one securityRules/write drift event against the ARM
  emulator (no injected latency) and Azurite, in remediate mode, until the handler returns
  with the fix written. The time is from just before the child is spawned to the handler's
  return, so interpreter start-up is included; peak RSS is the child's ``ru_maxrss``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

IMPORT_CHILD = """\
import json, resource, sys, time
t0 = time.perf_counter()
import function_app
t1 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "modules": len(sys.modules)}))
"""

DECISION_CHILD = """\
import json, os, resource, sys, time
t0 = time.perf_counter()
import function_app
t1 = time.perf_counter()
fns = {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter
event = EventGridEventInConverter.decode(meta.Datum(os.environ["BENCH_EVENT"], "json"), trigger_metadata={})
t2 = time.perf_counter()
fns["on_resource_event"](event)
t3 = time.perf_counter()
done_at = time.time()
print(json.dumps({"import_s": t1 - t0, "index_s": t2 - t1, "handle_s": t3 - t2, "done_at": done_at,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "modules": len(sys.modules)}))
"""


def compile_bytecode() -> None:
    """What a deployment build does (and ``make bench`` does first): compile every module."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "exfilguard", "function_app.py"], cwd=REPO,
                   check=True)


def _run_child(args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float, float]:
    """(the child's JSON line, wall seconds spawn -> exit, time.time() at spawn)."""
    spawned_at = time.time()
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {args[:2]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"bench child {args[:2]} printed no result:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1]), wall, spawned_at


def cold_import(runs: int = 9) -> dict[str, Any]:
    from .common import child_env, median

    env = child_env()
    _run_child(["-c", IMPORT_CHILD], env)  # warm-up: page cache and bytecode, not measured
    results = []
    walls = []
    for _ in range(runs):
        got, wall, _ = _run_child(["-c", IMPORT_CHILD], env)
        results.append(got)
        walls.append(wall)
    imports = [r["import_s"] for r in results]
    return {"median_s": median(imports), "runs_s": imports, "process_wall_median_s": median(walls),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results), "modules": results[-1]["modules"]}


def cold_first_decision(storage: str, runs: int = 3) -> dict[str, Any]:
    """``runs`` fresh processes, each on fresh state primed by a sweep, each fixing one drift."""
    from tests.armemu import ArmEmulator

    from .common import NSG_WEU, RULE_WRITE, app_settings, child_env, median, resource_event, sample, use_settings
    from .live import COMPLIANT, drift_nsg, nsg_fixed, original, prime

    out = []
    with ArmEmulator(sample(COMPLIANT)) as emu:
        for _ in range(runs):
            settings = app_settings(emu.url, storage)
            use_settings(settings)
            emu.set_body(NSG_WEU, original(NSG_WEU))
            prime(emu)
            drift_nsg(emu)
            emu.reset_log()
            event = resource_event(RULE_WRITE, f"{NSG_WEU}/securityRules/deny-internet-out")
            env = child_env({**settings, "BENCH_EVENT": json.dumps(event)})
            got, _, spawned_at = _run_child(["-c", DECISION_CHILD], env)
            if not nsg_fixed(emu) or len(emu.writes()) != 1:
                raise RuntimeError("bench: the first-decision child did not fix the drift with one write")
            got["decision_s"] = got.pop("done_at") - spawned_at
            got["arm_requests"] = {"reads": emu.count(kind="read"), "writes": emu.count(kind="write"),
                                   "polls": emu.count(kind="poll")}
            out.append(got)
    ordered = sorted(out, key=lambda r: r["decision_s"])
    mid = ordered[len(ordered) // 2]
    return {"median_s": median(r["decision_s"] for r in out), "runs_s": [r["decision_s"] for r in out],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in out), "median_run": mid}
