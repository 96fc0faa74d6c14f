"""Live scans: sweep a subscription through ARM, evaluate, and (when asked) remediate.

The same pure middle as a snapshot scan (``picture.build`` -> ``engine.evaluate`` ->
``engine.plan``); this module only adds the edges: reading, writing, and turning ARM's
refusals into report entries instead of tracebacks. The CLI and the Function app share it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, TextIO

from exfilguard.adapters.endpoint import EndpointError, resolve_endpoint
from exfilguard.adapters.writer import Replan, WriteResult, apply_change, planned
from exfilguard.core import ids, types
from exfilguard.core.config import Config, Mode
from exfilguard.core.engine import Evaluation, evaluate, plan, should_apply
from exfilguard.core.findings import Notice
from exfilguard.core.fixes import PlannedChange
from exfilguard.core.picture import build

_INLINE = ("subnets", "securityRules", "serviceEndpointPolicyDefinitions")


class LiveScanError(Exception):
    """The live scan cannot start or cannot read anything (bad endpoint, no credential)."""


# ---------------------------------------------------------------------- bodies
def body_index(bodies: list[dict]) -> dict[str, dict]:
    """Raw bodies by ID key, including children carried inline by their parent (a subnet in its
    VNet): a fix targets the child, and its inline body (with its own etag) is what ARM returns."""
    index: dict[str, dict] = {}
    for body in bodies:
        rid = body.get("id") if isinstance(body, dict) else None
        props = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(rid, str) or not isinstance(props, dict):
            continue
        for prop in _INLINE:
            for child in props.get(prop) or ():
                # Only the parent's own children: an NSG's properties.subnets[] holds bare
                # {"id"} references to subnets of some VNet, not their bodies.
                if (isinstance(child, dict) and isinstance(child.get("id"), str)
                        and isinstance(child.get("properties"), dict)
                        and ids.key(child["id"]).rsplit("/", 2)[0] == ids.key(rid)):
                    index[ids.key(child["id"])] = child
    for body in bodies:  # a standalone body wins over the inline copy
        if isinstance(body, dict) and isinstance(body.get("id"), str):
            index[ids.key(body["id"])] = body
    return index


def _is_within(body: Any, target_key: str) -> bool:
    rid = body.get("id") if isinstance(body, dict) else None
    if not isinstance(rid, str):
        return False
    k = ids.key(rid)
    return k == target_key or k.startswith(target_key + "/")


def replanner(bodies: list[dict], config: Config, mode: Mode | None) -> Callable[[str], Replan]:
    """Re-plan one target against a fresh body of it, everything else as first read.

    The fresh body replaces the target (and anything standalone beneath it); a child target
    such as a subnet is added standalone, which wins over its stale inline copy.
    """
    def for_target(target_id: str) -> Replan:
        target_key = ids.key(target_id)
        others = [b for b in bodies if not _is_within(b, target_key)]

        def replan(fresh: dict) -> PlannedChange | None:
            picture = build([*others, fresh], config.guarded_subnets, source="arm")
            evaluation = evaluate(picture, config)
            for change in plan(evaluation.findings, config, mode):
                if ids.key(change.target_id) == target_key:
                    return change
            return None

        return replan

    return for_target


def write_order(change: PlannedChange) -> tuple[int, str]:
    """Fix the things that get attached before attaching them: NSGs and policies first, then
    subnets, then workspaces and computes (each descriptor's ``write_rank``)."""
    parsed = ids.try_parse(change.target_id)
    rank = types.write_order(ids.type_key(parsed.type)) if parsed else 9
    return rank, ids.key(change.target_id)


def remediate(client: Any, bodies: list[dict], evaluation: Evaluation, config: Config, *, mode: Mode | None,
              dry_run: bool) -> list[WriteResult]:
    """Write the planned fixes, one write per resource, and account for every one.

    ``mode``: ``"audit"`` writes nothing and returns every fix it would make as ``planned``;
    ``"remediate"`` applies every automatic fix except rules overridden to audit; None lets
    the configuration decide per rule. ``dry_run`` reads but returns the requests unsent.
    """
    index = body_index(bodies)
    to_write = [] if mode == "audit" else sorted(plan(evaluation.findings, config, mode), key=write_order)
    replans = replanner(bodies, config, mode)
    results = [apply_change(client, change, replans(change.target_id), current=index.get(ids.key(change.target_id)),
                            dry_run=dry_run)
               for change in to_write]
    # Every automatic fix not written in this mode (audit, or a rule overridden to audit) is
    # still accounted for, as planned, so the audit log shows what remediation would do.
    written = {(ids.key(c.target_id), r) for c in to_write for r in c.rule_ids}
    held = [f for f in evaluation.findings
            if should_apply(f, config, "remediate") and (ids.key(f.fix_target), f.rule_id) not in written]
    results += [planned(c, index.get(ids.key(c.target_id)))
                for c in sorted(plan(held, replace(config, rule_modes={}), "remediate"), key=write_order)]
    return results


# ---------------------------------------------------------------------- the scan
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


def run_live_scan(args: Any, config: Config, *, client: Any = None, stderr: TextIO | None = None,
                  keep: Callable[[Any, list[dict]], None] | None = None) -> tuple[Evaluation, dict]:
    """``exfilguard scan --subscription``: evaluate the live subscription, remediate if asked.

    The CLI writes only with ``--remediate`` (whatever EXFILGUARD_MODE says: a person at a
    terminal asks for writes explicitly); ``--dry-run`` plans as ``--remediate`` would and
    sends no write. Read failures (a 403 on one type) become notices and ``errors`` entries,
    with ``incomplete: true`` so the CLI does not report a partial read as clean.
    ``client`` lets the Function app and tests pass a configured :class:`ArmClient`.
    ``keep(picture, bodies)`` is called once the picture is built, for what needs more than
    the evaluation (the HTML report's drawings).
    """
    from exfilguard.adapters.arm import ArmClient, ArmError

    err = stderr or sys.stderr
    subscription = (getattr(args, "subscription", None) or "").strip()
    if not subscription or "/" in subscription:
        raise LiveScanError(f"--subscription: expected a subscription ID, got {subscription!r}")
    own_client = client is None
    if client is None:
        try:
            endpoint = resolve_endpoint(getattr(args, "arm_endpoint", None))
        except EndpointError as exc:
            raise LiveScanError(str(exc)) from None
        client = ArmClient(subscription, endpoint)
    remediate_flag = bool(getattr(args, "remediate", False))
    dry_run = bool(getattr(args, "dry_run", False))
    read_errors: list[ArmError] = []

    def on_error(exc: ArmError) -> None:
        if exc.code == "AuthenticationFailed":
            raise exc
        read_errors.append(exc)

    try:
        try:
            with _progress(err) as progress:
                bodies = client.read_subscription(progress=progress, on_error=on_error)
        except ArmError as exc:
            raise LiveScanError(exc.message) from None
        if read_errors and not bodies:
            raise LiveScanError("nothing could be read: " + "; ".join(e.message for e in read_errors))
        picture = build(bodies, config.guarded_subnets, source=f"subscription {subscription}")
        evaluation = evaluate(picture, config)
        if keep is not None:
            keep(picture, bodies)
        if read_errors:
            evaluation = replace(evaluation, notices=(*evaluation.notices, *(
                Notice("read-error", e.resource_id, e.message) for e in read_errors)))
        mode: Mode = "remediate" if remediate_flag or dry_run else "audit"
        results = remediate(client, bodies, evaluation, config, mode=mode, dry_run=dry_run)
        _print_writes(results, err)
    finally:
        if own_client:
            client.close()
    errors = [e.to_json() for e in read_errors]
    errors += [{"resourceId": r.target_id, "status": r.http_status, "message": r.message,
                **({"missingPermission": r.missing_permission} if r.missing_permission else {})}
               for r in results if r.status in ("failed", "conflict")]
    extra: dict[str, Any] = {
        "live": {"subscription": subscription, "endpoint": client.endpoint,
                 "mode": "dry-run" if dry_run else mode},
        "writes": [r.to_json() for r in results],
        "armRequests": dict(sorted(client.counts.items())),
    }
    if errors:
        extra["errors"] = errors
    if read_errors:
        extra["incomplete"] = True
    return evaluation, extra
