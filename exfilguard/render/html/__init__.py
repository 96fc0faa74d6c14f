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
from exfilguard.core.picture import build
from exfilguard.render.html.page import CSP, render
from exfilguard.render.html.paths import NetworkPaths, network_paths


def evaluate_with_paths(bodies: Sequence[object], config: Config, *, source: str = "input",
                        extra_guarded: Iterable[str] | None = None) -> tuple[Evaluation, NetworkPaths]:
    """Evaluate a snapshot or sweep and read the network paths the page draws while the
    picture is at hand."""
    picture = build(bodies, config.guarded_subnets if extra_guarded is None else extra_guarded, source=source)
    evaluation = evaluate(picture, config)
    return evaluation, network_paths(picture, bodies, relevant={ids.key(f.resource_id) for f in evaluation.findings})


__all__ = ["CSP", "NetworkPaths", "evaluate_with_paths", "network_paths", "render"]
