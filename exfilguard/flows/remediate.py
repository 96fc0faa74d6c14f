"""Remediate: the one write loop, for the CLI (``scan --remediate``) and every Function trigger.

What is written and what is only accounted for as ``planned`` is decided here once
(:func:`plan_writes`); the loop (:func:`write`) writes one change per resource, fixing the
things that get attached before attaching them. The Function app wraps each write with its
loop guard, intents and audit through :class:`WriteHooks`; the CLI writes bare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from exfilguard.adapters.writer import Replan, WriteResult, apply_change, planned
from exfilguard.core import ids, types
from exfilguard.core.config import Config, Mode
from exfilguard.core.engine import Evaluation, evaluate, plan, should_apply
from exfilguard.core.fixes import PlannedChange
from exfilguard.core.picture import build

_INLINE = tuple(t.inline for t in types.TYPES if t.inline)


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


@dataclass(frozen=True)
class WritePlan:
    """The changes to write, in write order, and the automatic fixes held back (``planned``)."""

    mode: Mode | None
    to_write: list[PlannedChange]
    held: list[PlannedChange]


def plan_writes(evaluation: Evaluation, config: Config, mode: Mode | None) -> WritePlan:
    """The one definition of what is written and what would have been fixed.

    ``mode``: ``"audit"`` writes nothing; ``"remediate"`` writes every automatic fix except
    rules overridden to audit; None lets the configuration decide per rule. Every automatic
    fix not written in this mode (audit, or a rule overridden to audit) is still accounted
    for, as planned, so the audit log and the report show what remediation would do.
    """
    to_write = [] if mode == "audit" else sorted(plan(evaluation.findings, config, mode), key=write_order)
    written = {(ids.key(c.target_id), r) for c in to_write for r in c.rule_ids}
    held = [f for f in evaluation.findings
            if should_apply(f, config, "remediate") and (ids.key(f.fix_target), f.rule_id) not in written]
    return WritePlan(mode, to_write, sorted(plan(held, replace(config, rule_modes={}), "remediate"), key=write_order))


class WriteHooks(Protocol):
    """What a caller wraps around each write (the Function app: loop guard, intents, audit).
    ``before`` returns a token to write with, or None to leave the change unwritten; ``abort``
    undoes what ``before`` reserved when the write raised."""

    def before(self, change: PlannedChange, current: dict | None) -> Any: ...

    def after(self, change: PlannedChange, result: WriteResult, token: Any) -> None: ...

    def abort(self, token: Any) -> None: ...


def write(client: Any, bodies: list[dict], writes: WritePlan, config: Config, *, dry_run: bool = False,
          hooks: WriteHooks | None = None) -> list[WriteResult]:
    """Write ``writes.to_write`` one resource at a time (If-Match, re-plan on 412), then the held
    fixes as ``planned``. ``dry_run`` reads but returns the requests unsent."""
    index = body_index(bodies)
    replans = replanner(bodies, config, writes.mode)
    results = []
    for change in writes.to_write:
        current = index.get(ids.key(change.target_id))
        token = hooks.before(change, current) if hooks is not None else True
        if token is None:
            continue
        try:
            result = apply_change(client, change, replans(change.target_id), current=current, dry_run=dry_run)
        except BaseException:
            if hooks is not None:
                hooks.abort(token)
            raise
        if hooks is not None:
            hooks.after(change, result, token)
        results.append(result)
    return results + [planned(c, index.get(ids.key(c.target_id))) for c in writes.held]


def remediate(client: Any, bodies: list[dict], evaluation: Evaluation, config: Config, *, mode: Mode | None,
              dry_run: bool = False, hooks: WriteHooks | None = None) -> list[WriteResult]:
    """Plan (:func:`plan_writes`) and write (:func:`write`), accounting for every fix."""
    return write(client, bodies, plan_writes(evaluation, config, mode), config, dry_run=dry_run, hooks=hooks)
