"""HTML report against JSON report on a generated snapshot: ``python -m bench.html N [--repeats R]``.

Both are timed as ``exfilguard scan --snapshot FILE --format ...`` runs them once the file is
read (reading costs the same for both and is left out): the JSON report is ``engine.evaluate`` of ``picture.build``,
``report.to_json`` and ``report.write_json`` into memory; the HTML report is
``htmlreport.evaluate_with_paths`` (the same evaluation, keeping each workspace's network
path), ``report.to_json`` and ``htmlreport.render``. Runs alternate (JSON, HTML, JSON, ...)
so drift of the machine touches both; the medians' ratio is ``html_report_ratio``. The parts
that differ (writing the JSON text, following the paths and writing the page) are reported
too, with the page's size. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from typing import Any

from exfilguard.core import engine
from exfilguard.core.config import Config
from exfilguard.core.picture import build
from exfilguard.render import report
from exfilguard.render.html import evaluate_with_paths, render

from . import generate


def _json_once(bodies: list[dict], cfg: Config) -> tuple[float, float, int]:
    started = time.perf_counter()
    evaluation = engine.evaluate(build(bodies, cfg.guarded_subnets, source="snapshot"), cfg)
    evaluated = time.perf_counter()
    out = io.StringIO()
    report.write_json(report.to_json(evaluation), out)
    done = time.perf_counter()
    return done - started, done - evaluated, len(evaluation.findings)


def _html_once(bodies: list[dict], cfg: Config) -> tuple[float, float, int]:
    started = time.perf_counter()
    evaluation, paths = evaluate_with_paths(bodies, cfg, source="snapshot")
    evaluated = time.perf_counter()
    page = render(report.to_json(evaluation), paths, source="snapshot")
    done = time.perf_counter()
    return done - started, done - evaluated, len(page.encode("utf-8"))


def measure(resources: int, repeats: int) -> dict[str, Any]:
    cfg = Config()
    bodies = generate.subscription(resources)
    json_runs, html_runs, json_tail, html_tail = [], [], [], []
    findings = size = 0
    for _ in range(repeats):
        total, tail, findings = _json_once(bodies, cfg)
        json_runs.append(total)
        json_tail.append(tail)
        total, tail, size = _html_once(bodies, cfg)
        html_runs.append(total)
        html_tail.append(tail)
    j, h = statistics.median(json_runs), statistics.median(html_runs)
    return {"resources": len(bodies), "findings": findings, "json_s": j, "html_s": h, "ratio": h / j,
            "json_runs_s": json_runs, "html_runs_s": html_runs, "json_write_s": statistics.median(json_tail),
            "html_render_s": statistics.median(html_tail), "html_mb": round(size / 1048576, 1)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.html")
    p.add_argument("resources", type=int)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.resources, args.repeats)))


if __name__ == "__main__":
    main()
