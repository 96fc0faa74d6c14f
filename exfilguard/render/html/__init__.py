"""``--format html``: the report as one self-contained page that draws each workspace's path.

:func:`render` turns a JSON report (any scan's) and the network paths into the page;
:func:`network_paths` follows the paths through a picture; :func:`evaluate_with_paths` is a
snapshot or sweep scan that keeps what the drawing needs before the picture is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from exfilguard.core import ids
from exfilguard.core.config import Config
from exfilguard.core.engine import Evaluation, evaluate
from exfilguard.core.picture import build, cyclic_gc_paused
from exfilguard.render.html.page import CSP, render
from exfilguard.render.html.paths import NetworkPaths, network_paths


def evaluate_with_paths(bodies: Sequence[object], config: Config, *, source: str = "input",
                        extra_guarded: Iterable[str] | None = None) -> tuple[Evaluation, NetworkPaths]:
    """What ``engine.scan`` does for a report, plus the network paths, read while the picture
    is alive. Like ``engine.scan`` it keeps the cyclic collector paused and drops the
    picture before it resumes, so the collector never walks it."""
    with cyclic_gc_paused():
        picture = build(bodies, config.guarded_subnets if extra_guarded is None else extra_guarded, source=source)
        evaluation = evaluate(picture, config)
        paths = network_paths(picture, bodies, relevant={ids.key(f.resource_id) for f in evaluation.findings})
        del picture
        return evaluation, paths


__all__ = ["CSP", "NetworkPaths", "evaluate_with_paths", "network_paths", "render"]
