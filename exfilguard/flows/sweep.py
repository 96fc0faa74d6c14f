"""Sweep a subscription: read everything, evaluate it like a snapshot, act on the findings.

The use case of ``exfilguard scan --subscription`` (:func:`exfilguard.flows.live.run_live_scan`)
and of the Function app's timer and HTTP-requested sweeps (:func:`exfilguard.app.sweep.run_sweep`).
They differ only in their adapters: how the subscription is read (the CLI's progress bar; the
Function's deadline, checkpoint and workers), how the findings are acted on (the CLI's writes
as asked; the Function's loop guard, alerts and audit) and where the report goes.

A read that fails for one type (a 403 on storage accounts) does not stop the sweep: the gap
becomes a ``read-error`` notice, and callers mark the result incomplete. No token at all
(``AuthenticationFailed``) stops it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from exfilguard.core.config import Config
from exfilguard.core.engine import Evaluation, evaluate
from exfilguard.core.findings import Notice
from exfilguard.core.picture import Picture, build

if TYPE_CHECKING:
    from exfilguard.adapters.arm import ArmError

OnError = Callable[["ArmError"], None]


class SweepError(RuntimeError):
    """The sweep could not produce a report (nothing readable)."""


@dataclass
class Swept:
    """What one sweep read, found and did (``done``: what its ``act`` returned)."""

    bodies: list[dict]
    picture: Picture
    evaluation: Evaluation
    read_errors: list[ArmError] = field(default_factory=list)
    done: Any = None

    def errors_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.read_errors]


def read(read_fn: Callable[[OnError], list[dict] | None],
         on_read_error: OnError | None = None) -> tuple[list[dict] | None, list[ArmError]]:
    """``read_fn(on_error)`` with every read error collected, except a missing token
    (``AuthenticationFailed``), which stops the read."""
    read_errors: list[ArmError] = []

    def on_error(exc: ArmError) -> None:
        if exc.code == "AuthenticationFailed":
            raise exc
        if on_read_error is not None:
            on_read_error(exc)
        read_errors.append(exc)

    return read_fn(on_error), read_errors


def sweep(read_fn: Callable[[OnError], list[dict] | None], config: Config, *, source: str,
          act: Callable[[Swept], Any], on_read_error: OnError | None = None) -> Swept | None:
    """:func:`read` (None when the reader paused: nothing evaluated, None returned), evaluate,
    then ``act(swept)``. Raises :class:`SweepError` when errors left nothing to read."""
    bodies, read_errors = read(read_fn, on_read_error)
    if bodies is None:
        return None
    if read_errors and not bodies:
        raise SweepError("nothing could be read: " + "; ".join(e.message for e in read_errors[:5]))
    picture = build(bodies, config.guarded_subnets, source=source)
    evaluation = evaluate(picture, config)
    if read_errors:
        evaluation = replace(evaluation, notices=(*evaluation.notices, *(
            Notice("read-error", e.resource_id, e.message) for e in read_errors)))
    swept = Swept(bodies, picture, evaluation, read_errors)
    swept.done = act(swept)
    return swept
