"""Machine instructions per event for the engine benchmark's work, counted by valgrind.

The wall-clock rate of ``bench.engine`` moves by a quarter between runs on a machine shared
with other tenants, too much to tell a 5 % change from noise. The number of instructions the
same events cost does not move, so changes to the hot path are judged by it:
``python -m bench.instructions [--rounds R]`` runs the benchmark's setup and then R rounds
of its events (one per NSG) under ``valgrind --tool=cachegrind``, the same setup with no rounds, and
prints the difference per event as one JSON line. Needs valgrind (Debian: ``apt-get install
valgrind``); about half a minute per round. Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

from .common import REPO


def _work(rounds: int) -> None:
    """The setup of :func:`bench.engine.measure`, then ``rounds`` rounds of its events."""
    from exfilguard.app.sweep import index_rows
    from exfilguard.core.config import Config
    from exfilguard.core.picture import build

    from . import engine, generate

    bodies = engine.arm_bodies(generate.subscription(1000))
    cfg = Config(mode="remediate")
    nsgs, events = engine.rule_events(bodies)
    client = engine.MemoryArm(bodies, copies=2,
                              written={n["id"]: n["properties"]["securityRules"][0]["name"] for n in nsgs})
    index = engine.MemoryIndex(*index_rows(build(bodies)))
    for raw in events:
        engine.decide(raw, client, index, cfg)
    for _ in range(rounds):
        client.next_round()
        for raw in events:
            engine.decide(raw, client, index, cfg)


def _count(rounds: int) -> int:
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, "-m", "bench.instructions", "--work", str(rounds)]
    # The same hash seed in both runs, so both lay their dicts and sets out alike.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"valgrind printed no instruction count:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.instructions")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--work", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.work is not None:
        _work(args.work)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("bench.instructions needs valgrind (Debian: apt-get install valgrind)")
    from . import generate

    nsgs = sum(1 for b in generate.subscription(1000) if b["type"] == "Microsoft.Network/networkSecurityGroups")
    events = args.rounds * nsgs  # one event per NSG per round
    per_event = (_count(args.rounds) - _count(0)) / events
    print(json.dumps({"instructions_per_event": round(per_event), "events": events}))


if __name__ == "__main__":
    main()
