"""Live scans from the CLI: ``exfilguard scan --subscription``, with its terminal adapters.

The sweep itself (read, evaluate, act) is :func:`exfilguard.flows.sweep.sweep`, the one the
Function app's sweeps use too; the writes are :func:`exfilguard.flows.remediate.remediate`.
This module adds what a person at a terminal gets: the arguments, a progress bar, the
writes in words on stderr, and ARM's refusals as report entries instead of tracebacks.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from exfilguard.adapters.endpoint import EndpointError, resolve_endpoint
from exfilguard.adapters.writer import WriteResult
from exfilguard.core.config import Config, Mode
from exfilguard.core.engine import Evaluation
from exfilguard.flows.remediate import remediate
from exfilguard.flows.sweep import SweepError, Swept, sweep


class LiveScanError(Exception):
    """The live scan cannot start or cannot read anything (bad endpoint, no credential)."""


@contextlib.contextmanager
def _progress(stream: TextIO) -> Iterator[Callable[[str, int], None] | None]:
    """A progress bar on a terminal (stderr, so stdout stays a clean report); nothing otherwise."""
    if not stream.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("reading {task.description}"), BarColumn(),
                  TextColumn("{task.completed} resources"), TimeElapsedColumn(),
                  console=Console(file=stream), transient=True) as bar:
        task = bar.add_task("subscription", total=None)

        def update(step: str, count: int) -> None:
            bar.update(task, description=step, completed=count)

        yield update


def _print_writes(results: list[WriteResult], stream: TextIO) -> None:
    """Dry-run requests and write outcomes in words, on stderr: the JSON report carries the data."""
    for r in results:
        if r.status == "dry-run":
            for req in r.requests:
                stream.write(f"dry-run: {req['method']} {req['url']}")
                if req["headers"].get("If-Match"):
                    stream.write(f"  If-Match: {req['headers']['If-Match']}")
                stream.write("\n")
                for path, change in r.changed.items():
                    stream.write(f"    {path}: {change['before']!r} -> {change['after']!r}\n")
        elif r.status != "planned":
            stream.write(f"{r.status}: {r.target_id} ({', '.join(r.rule_ids)}): {r.message}\n")


def connect(args: Any) -> tuple[str, Any]:
    """(``--subscription``, an ARM client for it at ``--arm-endpoint``); :class:`LiveScanError`
    when either is wrong."""
    from exfilguard.adapters.arm import ArmClient

    subscription = (getattr(args, "subscription", None) or "").strip()
    if not subscription or "/" in subscription:
        raise LiveScanError(f"--subscription: expected a subscription ID, got {subscription!r}")
    try:
        endpoint = resolve_endpoint(getattr(args, "arm_endpoint", None))
    except EndpointError as exc:
        raise LiveScanError(str(exc)) from None
    return subscription, ArmClient(subscription, endpoint)


def run_live_scan(args: Any, config: Config, *, client: Any = None, stderr: TextIO | None = None,
                  keep: Callable[[Any, list[dict]], None] | None = None) -> tuple[Evaluation, dict]:
    """``exfilguard scan --subscription``: evaluate the live subscription, remediate if asked.

    The CLI writes only with ``--remediate`` (whatever EXFILGUARD_MODE says: a person at a
    terminal asks for writes explicitly); ``--dry-run`` plans as ``--remediate`` would and
    sends no write. Read failures (a 403 on one type) become notices and ``errors`` entries,
    with ``incomplete: true`` so the CLI does not report a partial read as clean.
    ``client`` lets tests pass a configured :class:`ArmClient`.
    ``keep(picture, bodies)`` is called once the picture is built, for what needs more than
    the evaluation (the HTML report's drawings).
    """
    from exfilguard.adapters.arm import ArmError

    err = stderr or sys.stderr
    own_client = client is None
    if client is None:
        subscription, client = connect(args)
    else:
        subscription = (getattr(args, "subscription", None) or "").strip()
    dry_run = bool(getattr(args, "dry_run", False))
    mode: Mode = "remediate" if getattr(args, "remediate", False) or dry_run else "audit"

    def read(on_error: Callable[[ArmError], None]) -> list[dict]:
        try:
            with _progress(err) as progress:
                bodies: list[dict] = client.read_subscription(progress=progress, on_error=on_error)
                return bodies
        except ArmError as exc:
            raise LiveScanError(exc.message) from None

    def act(swept: Swept) -> list[WriteResult]:
        if keep is not None:
            keep(swept.picture, swept.bodies)
        return remediate(client, swept.bodies, swept.evaluation, config, mode=mode, dry_run=dry_run)

    try:
        swept = sweep(read, config, source=f"subscription {subscription}", act=act)
    except SweepError as exc:
        raise LiveScanError(str(exc)) from None
    finally:
        if own_client:
            client.close()
    assert swept is not None  # the CLI's read never pauses
    _print_writes(swept.done, err)
    return swept.evaluation, _extra(swept, client, subscription, "dry-run" if dry_run else mode)


def _extra(swept: Swept, client: Any, subscription: str, mode: str) -> dict[str, Any]:
    """The report's live-scan keys: where and how it ran, the writes, ARM's refusals."""
    results: list[WriteResult] = swept.done
    errors = swept.errors_json()
    errors += [{"resourceId": r.target_id, "status": r.http_status, "message": r.message,
                **({"missingPermission": r.missing_permission} if r.missing_permission else {})}
               for r in results if r.status in ("failed", "conflict")]
    extra: dict[str, Any] = {
        "live": {"subscription": subscription, "endpoint": client.endpoint, "mode": mode},
        "writes": [r.to_json() for r in results],
        "armRequests": dict(sorted(client.counts.items())),
    }
    if errors:
        extra["errors"] = errors
    if swept.read_errors:
        extra["incomplete"] = True
    return extra
