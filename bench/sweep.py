"""Whole-evaluation time of generated snapshots: ``python -m bench.sweep N [--repeats R]``.

Run in a process of its own per size (``bench.run`` does), so one size's heap does not tax
the next. The snapshot is generated (``bench.generate``), written to a temporary file and
read back with the product's own reader (``exfilguard.adapters.snapshot.read``): that read
is timed separately. The whole evaluation is what every entrance does after reading:
``picture.build`` from the parsed ARM bodies, ``engine.evaluate`` (every rule) and
``engine.plan`` (the fixes remediate mode would write), as the CLI's scan runs them. It is
timed ``R`` times on the same parsed bodies; the median is reported. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any

from exfilguard.adapters import snapshot
from exfilguard.core import engine
from exfilguard.core.config import Config
from exfilguard.core.picture import build

from . import generate


def measure(resources: int, repeats: int) -> dict[str, Any]:
    cfg = Config(mode="remediate")
    fd, path = tempfile.mkstemp(prefix="exfilguard-bench-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(generate.subscription(resources), fh)
        size_mb = os.path.getsize(path) / 1048576
        started = time.perf_counter()
        bodies = snapshot.read(path, max_mb=size_mb + 1)
        read_s = time.perf_counter() - started
    finally:
        os.unlink(path)
    runs = []
    findings = changes = 0
    for _ in range(repeats):
        started = time.perf_counter()
        evaluation = engine.evaluate(build(bodies, cfg.guarded_subnets, source="snapshot"), cfg)
        planned = engine.plan(evaluation.findings, cfg, "remediate")
        runs.append(time.perf_counter() - started)
        findings, changes = len(evaluation.findings), len(planned)
        del evaluation, planned
    return {"resources": len(bodies), "evaluation_s": statistics.median(runs), "runs_s": runs, "read_s": read_s,
            "snapshot_mb": round(size_mb, 1), "findings": findings, "planned_changes": changes}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.sweep")
    p.add_argument("resources", type=int)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.resources, args.repeats)))


if __name__ == "__main__":
    main()
