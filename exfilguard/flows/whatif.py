"""``exfilguard scan --what-if FILE``: the findings a planned deployment would introduce.

Azure's what-if (``az deployment group|sub what-if --no-pretty-print -o json``) already works
out the after-state of every resource a Bicep/ARM deployment touches, as ARM bodies. Overlaid
on a base picture (a snapshot or a live read), the after-state is evaluated by the same rules
as any scan; a finding the deployment *introduces* is one present after and absent before,
keyed by (rule, resource). The pipeline gates on those alone, so existing drift does not
block an unrelated pull request, and a deployment that fixes drift passes.

The what-if document is ``WhatIfOperationResult`` of the ARM REST API (``changes[]`` at the
top level as the CLI prints it, or under ``properties`` as the REST API returns it); each
``WhatIfChange`` has ``resourceId``, ``changeType`` (Create, Delete, Deploy, Ignore, Modify,
NoChange, Unsupported), ``before``, ``after`` and, for Unsupported, ``unsupportedReason``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from exfilguard.core import ids
from exfilguard.core.config import Config
from exfilguard.core.engine import Evaluation
from exfilguard.core.engine import evaluate as evaluate_picture
from exfilguard.core.findings import Finding, Notice
from exfilguard.core.picture import build

CHANGE_TYPES = ("Create", "Delete", "Deploy", "Ignore", "Modify", "NoChange", "Unsupported")
_WRITES = frozenset({"create", "modify", "deploy"})
# Child collections a parent body carries inline (and the type of their members).
_INLINE = {"subnets": "microsoft.network/virtualnetworks/subnets",
           "securityRules": "microsoft.network/networksecuritygroups/securityrules",
           "serviceEndpointPolicyDefinitions":
               "microsoft.network/serviceendpointpolicies/serviceendpointpolicydefinitions"}
DEFAULT_MAX_MB = 32.0


class WhatIfError(ValueError):
    """The file is not a what-if result (or cannot be read): one line, exit 2."""


@dataclass(frozen=True, slots=True)
class Change:
    """One planned change; ``after``/``before`` are ARM bodies or None."""

    change_type: str  # as documented, e.g. "Modify"
    resource_id: str
    before: dict | None
    after: dict | None


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]
    notices: tuple[Notice, ...]
    counts: dict[str, int]


# ---------------------------------------------------------------------- reading
def parse(doc: Any, where: str = "what-if") -> Plan:
    """The changes of a what-if document. A document that is not one raises
    :class:`WhatIfError`; a single change that cannot be used is a notice, so one odd
    resource does not hide what the others introduce."""
    if not isinstance(doc, dict):
        raise WhatIfError(f"{where}: expected the JSON object of `az deployment ... what-if --no-pretty-print`, "
                          f"got {type(doc).__name__}")
    holder = doc
    if "changes" not in doc and isinstance(doc.get("properties"), dict):
        holder = doc["properties"]  # the REST API's shape
    status = doc.get("status")
    if isinstance(status, str) and status.lower() == "failed":
        given = doc.get("error")
        error = given if isinstance(given, dict) else {}
        raise WhatIfError(f"{where}: the what-if operation failed: "
                          f"{error.get('code', 'no code')}: {error.get('message', 'no message')}")
    if "changes" not in holder:
        raise WhatIfError(f"{where}: no 'changes' array: not the output of `az deployment ... what-if "
                          f"--no-pretty-print -o json` (keys: {', '.join(sorted(doc)[:6]) or 'none'})")
    raw = holder["changes"]
    if not isinstance(raw, list):
        raise WhatIfError(f"{where}: 'changes' must be an array, got {type(raw).__name__}")
    known = {t.lower(): t for t in CHANGE_TYPES}
    changes: list[Change] = []
    notices: list[Notice] = []
    counts: dict[str, int] = {}
    for i, item in enumerate(raw):
        label = f"{where} changes[{i}]"
        rid = item.get("resourceId") if isinstance(item, dict) else None
        kind = item.get("changeType") if isinstance(item, dict) else None
        if not isinstance(rid, str) or not rid.startswith("/"):
            notices.append(Notice("what-if-unreadable", str(rid or label), f"{label}: no resourceId; skipped"))
            counts["Unreadable"] = counts.get("Unreadable", 0) + 1
            continue
        ctype = known.get(kind.lower()) if isinstance(kind, str) else None
        if ctype is None:
            notices.append(Notice("what-if-unreadable", rid, f"{label}: changeType {kind!r} is not one of "
                                  f"{', '.join(CHANGE_TYPES)}; skipped"))
            counts["Unreadable"] = counts.get("Unreadable", 0) + 1
            continue
        counts[ctype] = counts.get(ctype, 0) + 1
        before = item.get("before") if isinstance(item.get("before"), dict) else None
        after = item.get("after") if isinstance(item.get("after"), dict) else None
        if ctype == "Unsupported":
            reason = item.get("unsupportedReason") or "no reason given"
            notices.append(Notice("what-if-unsupported", rid, f"what-if cannot predict this change ({reason}); "
                                  "its after-state is not evaluated"))
            continue
        if ctype.lower() in _WRITES and after is None:
            notices.append(Notice("what-if-unreadable", rid, f"{label}: {ctype} without an 'after' body; "
                                  "its after-state is not evaluated"))
            continue
        changes.append(Change(ctype, rid, before, after))
    return Plan(tuple(changes), tuple(notices), dict(sorted(counts.items())))


def read_text(path: str | os.PathLike[str], max_mb: float | None = None) -> str:
    p = Path(path)
    limit = DEFAULT_MAX_MB if max_mb is None else max_mb
    try:
        if p.stat().st_size > limit * 1024 * 1024:
            raise WhatIfError(f"{p}: over the {limit:g} MB limit (raise it with --max-snapshot-mb)")
        return p.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise WhatIfError(f"{p}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise WhatIfError(f"{p}: not UTF-8 text") from None


def load(path: str | os.PathLike[str], max_mb: float | None = None) -> tuple[Plan, str]:
    """The plan and the file's text (kept for SARIF regions)."""
    text = read_text(path, max_mb)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WhatIfError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise WhatIfError(f"{path}: JSON nested too deeply") from None
    return parse(doc, str(path)), text


# ---------------------------------------------------------------------- overlay
def _key_of(body: Any) -> str | None:
    rid = body.get("id") if isinstance(body, dict) else None
    return ids.key(rid) if isinstance(rid, str) else None


def _without_inline(body: dict, child_key: str) -> dict:
    """``body`` without the inline child ``child_key`` (a shallow copy, only when it has it)."""
    props = body.get("properties")
    if not isinstance(props, dict):
        return body
    for prop in _INLINE:
        kids = props.get(prop)
        if isinstance(kids, list) and any(_key_of(k) == child_key for k in kids):
            return {**body, "properties": {**props, prop: [k for k in kids if _key_of(k) != child_key]}}
    return body


def _inline_types(body: dict) -> set[str]:
    props = body.get("properties")
    if not isinstance(props, dict):
        return set()
    return {t for prop, t in _INLINE.items() if isinstance(props.get(prop), list)}


def overlay(base: Iterable[Any], changes: Iterable[Change]) -> tuple[list[Any], list[Any]]:
    """(before bodies, after bodies).

    Before: the base, plus the ``before`` body of any changed resource the base lacks (the
    what-if saw it, so it exists). After: every Create/Modify/Deploy ``after`` body replaces
    the resource; a Delete removes it, its standalone descendants, and its copy inline in its
    parent. A parent replaced with an inline child list (a VNet with ``subnets``) drops the
    base's standalone bodies of those children: the deployment states the whole list. Children
    merge as in any picture (:func:`exfilguard.core.picture.build`): a standalone child wins.
    """
    before = list(base)
    index = {k: i for i, b in enumerate(before) if (k := _key_of(b)) is not None}
    changes = list(changes)
    for c in changes:
        k = ids.key(c.resource_id)
        if k not in index and c.before is not None and c.change_type != "Create":
            index[k] = len(before)
            before.append(_with_id(c.before, c.resource_id))
    after: dict[str, Any] = {}
    loose: list[Any] = []  # bodies without an ID: passed on for build() to report
    for b in before:
        k = _key_of(b)
        if k is None:
            loose.append(b)
        else:
            after[k] = b
    for c in changes:
        k = ids.key(c.resource_id)
        kind = c.change_type.lower()
        if kind == "delete":
            for other in [o for o in after if o == k or o.startswith(k + "/")]:
                del after[other]
            parent = ids.key(ids.parent_id(c.resource_id)) if "/providers/" in k else None
            if parent and parent in after:
                after[parent] = _without_inline(after[parent], k)
        elif kind in _WRITES and c.after is not None:
            body = _with_id(c.after, c.resource_id)
            after[k] = body
            superseded = _inline_types(body)
            if superseded:
                for other in [o for o, b in after.items()
                              if o.startswith(k + "/") and o.count("/") == k.count("/") + 2
                              and isinstance(b, dict) and str(b.get("type", "")).lower() in superseded
                              and not any(ids.key(x.resource_id) == o for x in changes)]:
                    del after[other]
    return before, [*after.values(), *loose]


def _with_id(body: dict, resource_id: str) -> dict:
    return body if isinstance(body.get("id"), str) else {**body, "id": resource_id}


# ---------------------------------------------------------------------- evaluation
def finding_key(f: Finding) -> tuple[str, str]:
    return f.rule_id, ids.key(f.resource_id)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the deployment changes: the findings it introduces and resolves, and all after."""

    introduced: tuple[Finding, ...]
    resolved: tuple[Finding, ...]
    after: Evaluation
    notices: tuple[Notice, ...]
    after_bodies: tuple[Any, ...] = ()  # the overlaid resources (the HTML report draws their paths)

    def exit_code(self) -> int:
        """1 only when the deployment introduces an unexempted finding."""
        return 1 if any(not f.exempt for f in self.introduced) else 0

    def report(self, everything: bool = False) -> Evaluation:
        """The evaluation to print: the introduced findings (or every finding after)."""
        findings = self.after.findings if everything else self.introduced
        return replace(self.after, findings=findings, notices=self.notices)


def evaluate(base: Iterable[Any], plan: Plan, config: Config, source: str = "what-if") -> Outcome:
    before_bodies, after_bodies = overlay(base, plan.changes)
    before = evaluate_picture(build(before_bodies, config.guarded_subnets, source=f"{source} (before)"), config)
    after = evaluate_picture(build(after_bodies, config.guarded_subnets, source=f"{source} (after)"), config)
    had = {finding_key(f) for f in before.findings}
    has = {finding_key(f) for f in after.findings}
    introduced = tuple(f for f in after.findings if finding_key(f) not in had)
    resolved = tuple(f for f in before.findings if finding_key(f) not in has)
    return Outcome(introduced, resolved, after, (*plan.notices, *after.notices), tuple(after_bodies))


def summary_extra(plan: Plan, outcome: Outcome, path: str, everything: bool) -> dict[str, Any]:
    """The ``whatIf`` block of the JSON report."""
    return {"whatIf": {
        "file": path,
        "changes": plan.counts,
        "shown": "all" if everything else "introduced",
        "introduced": [{"ruleId": f.rule_id, "resourceId": f.resource_id} for f in outcome.introduced],
        "resolved": [{"ruleId": f.rule_id, "resourceId": f.resource_id} for f in outcome.resolved],
    }}


def base_bodies(args: Any, max_mb: float | None = None) -> tuple[list[Any], dict[str, Any]]:
    """The base picture's bodies: the ``--snapshot`` file, or a read-only sweep of the
    ``--subscription`` (read errors listed, with ``incomplete`` so the CLI does not call a
    partial base clean)."""
    if getattr(args, "snapshot", None):
        from exfilguard.adapters import snapshot

        return snapshot.read(args.snapshot, max_mb), {}
    from exfilguard.adapters.arm import ArmError
    from exfilguard.flows import sweep
    from exfilguard.flows.live import LiveScanError, connect

    try:
        subscription, client = connect(args)
    except LiveScanError as exc:
        raise WhatIfError(str(exc)) from None
    try:
        bodies, errors = sweep.read(lambda on_error: client.read_subscription(on_error=on_error))
    except ArmError as exc:
        raise WhatIfError(exc.message) from None
    finally:
        client.close()
    extra: dict[str, Any] = {"live": {"subscription": subscription, "endpoint": client.endpoint, "mode": "read-only"}}
    if errors:
        extra["errors"] = [e.to_json() for e in errors]
        extra["incomplete"] = True
    return list(bodies or ()), extra
