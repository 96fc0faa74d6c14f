"""Small helpers the core tests share: evaluate bodies, apply a finding's edits to them."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path

from exfilguard.core import ids
from exfilguard.core.config import Config
from exfilguard.core.engine import Evaluation, evaluate
from exfilguard.core.findings import Finding
from exfilguard.core.fixes import apply_edits
from exfilguard.core.picture import build

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"  # fixtures copied in, with their sources (tests/data/SOURCES.md)
SAMPLES = REPO / "samples"


def load_sample(name: str) -> list[dict]:
    return json.loads((SAMPLES / name).read_text())


def run(bodies: list[dict], config: Config | None = None) -> Evaluation:
    return evaluate(build(copy.deepcopy(bodies)), config or Config())


def by_rule(evaluation: Evaluation, rule_id: str) -> list[Finding]:
    return [f for f in evaluation.findings if f.rule_id == rule_id]


def _locate(bodies: list[dict], target: str) -> tuple[list, int] | None:
    k = ids.key(target)
    for i, b in enumerate(bodies):
        if ids.key(b.get("id", "")) == k:
            return bodies, i
        for sub in (b.get("properties") or {}).get("subnets") or []:
            if ids.key(sub.get("id", "")) == k:
                subs = b["properties"]["subnets"]
                return subs, subs.index(sub)
    return None


def apply_findings(bodies: list[dict], findings: Iterable[Finding]) -> list[dict]:
    """The bodies as they would be after the findings' edits were written."""
    out = copy.deepcopy(bodies)
    for f in findings:
        where = _locate(out, f.fix_target)
        assert where is not None, f"target {f.fix_target} not in the bodies"
        container, i = where
        container[i] = apply_edits(container[i], f.edits)
    return out
