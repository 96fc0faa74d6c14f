"""Load measures of the reliability issue: event storms and a large sweep.

- ``storm_reads``: ARM reads for (a) 40 writes to one NSG within 10 s (one every 250 ms, a
  Terraform apply rewriting one NSG's rules) and (b) 200 NSGs x 5 writes each (a Terraform
  apply over 200 NSGs, started 50 ms apart, each NSG's five rule writes back to back within
  120 ms). Events go through ``on_resource_event`` on worker threads, half of them on a
  second ``Services`` (a second instance, as Flex Consumption scales out), with the default
  coalescing settings, Azurite for storage and the ARM emulator. Targets: (a) <= 12 reads,
  (b) <= 3 reads per NSG.
- ``sweep_large``: a subscription of 300 workspaces x 100 environments (plus each region
  stack's VNet, NSG, policy, storage account and two computes) behind the emulator with 50 ms
  of latency on every request, swept with the default ARM budget (20 reads/s) and deadline
  (780 s). ``first``: the first sweep, across however many resumable runs it takes;
  ``steady``: the next sweep, nothing changed. Targets: every run under half the 30-minute
  function timeout; steady <= 60 s and <= 1,000 requests; requests per second never above the
  budget (``peak_requests_per_s`` counts requests in any 10-second window / 10).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from tests import factory as f

from .common import app_settings, delivered, resource_event, storage_connection, use_settings

RULE_WRITE = "Microsoft.Network/networkSecurityGroups/securityRules/write"
REGIONS = ("westeurope", "eastus", "northeurope", "westus2", "uksouth", "japaneast", "australiaeast",
           "canadacentral")


def _stacks(n: int) -> list[list[dict]]:
    return [f.region_stack(f"rg-ml-{i:05d}", REGIONS[i % len(REGIONS)], i % 250) for i in range(n)]


def _writer(i: int) -> dict[str, str]:
    return {"name": f"Terraform {i}", "upn": f"terraform{i}@contoso.example",
            "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "oid": f"0f9e8d7c-6b5a-4948-8372-{i:012d}"}


def _play(schedule: list[tuple[float, dict]], handlers: list[Callable[[Any], Any]]) -> None:
    """Deliver each event at its time (seconds from now) on its own thread, round robin over
    the instances' handlers; returns when every invocation has returned."""
    start = time.monotonic()
    errors: list[BaseException] = []

    def one(i: int, body: dict) -> None:
        # The change happens now (ARM's event time), whenever the event object was built.
        body = {**body, "eventTime": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        try:
            handlers[i % len(handlers)](delivered(body))
        except BaseException as exc:
            errors.append(exc)

    # One thread per event: Event Grid pushes every event at once; a bounded pool would deliver
    # late the events queued behind sleeping owners, which is not what a storm looks like.
    with ThreadPoolExecutor(max_workers=len(schedule)) as pool:
        for i, (at, body) in enumerate(sorted(schedule, key=lambda x: x[0])):
            delay = at - (time.monotonic() - start)
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, i, body)
    if errors:
        raise RuntimeError(f"bench: {len(errors)} deliveries raised; first: {errors[0]!r}")


def _instances(settings: dict[str, str]) -> list[Callable[[Any], Any]]:
    from exfilguard.adapters.configfile import load
    from exfilguard.adapters.state import State
    from exfilguard.flows.event import handle_event
    from exfilguard.flows.runtime import Services, services

    first = services()
    app = load(settings)
    second = Services(settings=app, state=State(app.storage, prefix=app.state_prefix, queue_name=app.sweep_queue),
                      environ=dict(settings))
    return [lambda e, s=s: handle_event(e, s) for s in (first, second)]


def _prime(emu: Any) -> None:
    from azure.functions.timer import TimerRequest

    from .live import functions

    functions()["scheduled_sweep"](TimerRequest(past_due=False))
    emu.reset_log()


def storm_reads(storage: str, *, quick: bool = False) -> dict[str, Any]:
    from tests.armemu import ArmEmulator

    out: dict[str, Any] = {}
    # (a) one NSG, 40 writes in 10 s
    stacks = _stacks(1)
    nsg = stacks[0][1]["id"]
    with ArmEmulator([b for s in stacks for b in s]) as emu:
        settings = app_settings(emu.url, storage)
        use_settings(settings)
        _prime(emu)
        n, spacing = (12, 0.25) if quick else (40, 0.25)
        schedule = [(i * spacing, resource_event(RULE_WRITE, f"{nsg}/securityRules/rule-{i}", who=_writer(i)))
                    for i in range(n)]
        started = time.perf_counter()
        _play(schedule, _instances(settings))
        out["one_nsg"] = {"writes": n, "over_s": round(n * spacing, 1), "reads": emu.count(kind="read"),
                          "wall_s": round(time.perf_counter() - started, 2)}
    # (b) many NSGs, 5 writes each
    count = 20 if quick else 200
    stacks = _stacks(count)
    nsgs = [s[1]["id"] for s in stacks]
    with ArmEmulator([b for s in stacks for b in s]) as emu:
        settings = app_settings(emu.url, storage)
        use_settings(settings)
        _prime(emu)
        schedule = []
        for i, nsg_id in enumerate(nsgs):
            for j in range(5):
                schedule.append((i * 0.05 + j * 0.03,
                                 resource_event(RULE_WRITE, f"{nsg_id}/securityRules/rule-{j}", who=_writer(i))))
        started = time.perf_counter()
        _play(schedule, _instances(settings))
        reads = emu.records(kind="read")
        per_rg: dict[str, int] = {}
        for r in reads:
            rg = r.path.split("/resourceGroups/", 1)[-1].split("/", 1)[0].lower()
            per_rg[rg] = per_rg.get(rg, 0) + 1
        per_nsg = [per_rg.get(n.split("/resourceGroups/", 1)[1].split("/", 1)[0].lower(), 0) for n in nsgs]
        out["many_nsgs"] = {"nsgs": count, "writes_each": 5, "reads": len(reads),
                            "reads_per_nsg_max": max(per_nsg), "reads_per_nsg_mean": round(sum(per_nsg) / count, 3),
                            "wall_s": round(time.perf_counter() - started, 2)}
    return out


def _large_subscription(workspaces: int, environments: int) -> list[dict]:
    out = []
    for stack in _stacks(workspaces):
        out += stack
        ws = stack[4]["id"]
        for e in range(environments - 1):  # the stack brings one
            image = ("viennaglobal.azurecr.io/azureml/base:old" if e % 50 == 0
                     else "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest")
            out.append(f.environment(ws, f"env-{e:03d}", "1", image))
    return out


def _peak_rate(times: list[float], window: float = 10.0) -> float:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] > window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best / window


def sweep_large(storage: str, *, workspaces: int = 300, environments: int = 100, latency: float = 0.05,
                extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    import azure.functions as func
    from azure.functions.timer import TimerRequest

    from exfilguard.flows.runtime import services
    from tests.armemu import ArmEmulator

    from .live import functions

    data = _large_subscription(workspaces, environments)
    with ArmEmulator(data, latency=latency) as emu:
        settings = {**app_settings(emu.url, storage, mode="audit"), **(extra_env or {})}
        use_settings(settings)
        fns = functions()
        state = services().state
        emu.reset_log()
        run_s: list[float] = []
        started = time.perf_counter()
        t0 = time.perf_counter()
        fns["scheduled_sweep"](TimerRequest(past_due=False))
        run_s.append(time.perf_counter() - t0)
        record = state.latest_sweep("timer")
        q = state.queue()
        while record is not None and state.get_sweep(record.sweep_id).state == "running":
            got = False
            for m in q.receive_messages(messages_per_page=1, visibility_timeout=1800):
                t0 = time.perf_counter()
                fns["sweep_queue"](func.QueueMessage(id=m.id, body=m.content.encode(), pop_receipt=m.pop_receipt))
                run_s.append(time.perf_counter() - t0)
                q.delete_message(m)
                got = True
                break
            if not got:
                raise RuntimeError("bench: a paused sweep left no message to resume it")
        first_wall = time.perf_counter() - started
        final = state.get_sweep(record.sweep_id) if record else None
        times = [r.time for r in emu.log]
        first = {"runs": len(run_s), "requests": len(times), "wall_s": round(first_wall, 1),
                 "longest_run_s": round(max(run_s), 1), "state": final.state if final else "none",
                 "peak_requests_per_s": round(_peak_rate(times), 1)}
        emu.reset_log()
        t0 = time.perf_counter()
        fns["scheduled_sweep"](TimerRequest(past_due=False))
        steady_wall = time.perf_counter() - t0
        times = [r.time for r in emu.log]
        steady = {"requests": len(times), "wall_s": round(steady_wall, 1),
                  "peak_requests_per_s": round(_peak_rate(times), 1),
                  "state": state.latest_sweep("timer").state}
    return {"workspaces": workspaces, "environments": environments, "latency_s": latency, "first": first,
            "steady": steady}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.reliability")
    p.add_argument("what", choices=("storm", "sweep"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--workspaces", type=int, default=300)
    p.add_argument("--environments", type=int, default=100)
    args = p.parse_args(argv)
    import logging

    logging.getLogger("exfilguard").setLevel(logging.CRITICAL)
    logging.getLogger("azure").setLevel(logging.CRITICAL)
    storage = storage_connection()
    if args.what == "storm":
        result = storm_reads(storage, quick=args.quick)
    elif args.quick:
        result = sweep_large(storage, workspaces=10, environments=20,
                             extra_env={"EXFILGUARD_SWEEP_DEADLINE_SECONDS": "3"})
    else:
        result = sweep_large(storage, workspaces=args.workspaces, environments=args.environments)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    threading.stack_size(512 * 1024)
    sys.exit(main())
