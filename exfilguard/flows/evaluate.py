"""Evaluate around one resource: the use case of an Event Grid event and of ``POST /api/evaluate``.

Read just enough around the resource (:class:`exfilguard.flows.closure.ClosureReader`),
evaluate the findings of the resources it may have changed, and act on them
(:func:`exfilguard.flows.actions.act`). The handlers parse their trigger, call this and
shape their answer and audit row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exfilguard.core import engine
from exfilguard.core.picture import Picture, build
from exfilguard.flows import actions
from exfilguard.flows.closure import ClosureRead, ClosureReader


@dataclass(frozen=True)
class Around:
    """What was read and, when it was evaluated, the evaluation and what was done about it."""

    read: ClosureRead
    picture: Picture | None = None
    evaluation: engine.Evaluation | None = None
    done: actions.Actions | None = None


def _affected(read: ClosureRead) -> bool:
    return bool(read.affected)


def evaluate_around(inv: actions.Invocation, resource_type: str, resource_id: str, *, deleted: bool = False,
                    evaluate_if: Callable[[ClosureRead], bool] = _affected) -> Around:
    """Read around ``resource_id``, then, when ``evaluate_if(read)`` (by default: something
    guarded is affected), evaluate the affected resources and act on their findings."""
    cfg = inv.services.settings.config
    read = ClosureReader(inv.client, inv.services.state, cfg).around(resource_type, resource_id, deleted=deleted)
    if not evaluate_if(read):
        return Around(read)
    bodies = read.body_list()
    picture = build(bodies, cfg.guarded_subnets, source="arm")
    evaluation = engine.evaluate(picture, cfg, only=read.affected.values())
    return Around(read, picture, evaluation, actions.act(inv, bodies, evaluation, picture))
