"""The remediation writer: one planned change, one conditional write, never a blind overwrite.

Each change is applied as read-modify-write: the edits go on top of the body ARM last
returned, and the PUT carries that body's ETag in If-Match. If anyone changed the resource
in between, ARM answers 412 and nothing is overwritten; the writer then reads the resource
again and asks the engine what the fix is *now* (``replan``), because the other change may
have fixed the finding, made it worse, or moved the rule the edits point at. After
``max_attempts`` conflicts it gives up and says so.

Edits are idempotent (``upsert`` and ``add`` never duplicate, ``set`` and ``remove`` converge),
which makes retries safe: a PUT replayed by the retry policy after a lost answer either meets
412 (its own first copy landed and changed the ETag; the replan then finds nothing left to do)
or lands once. Every outcome comes back as a :class:`WriteResult` for the audit log, alerts
and the report; nothing here raises for an ARM refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from exfilguard.core import ids, types
from exfilguard.core.fixes import Edit, EditError, PlannedChange, Sel, apply_edits

if TYPE_CHECKING:
    from exfilguard.adapters.arm import ArmClient

STATUSES = ("applied", "not-needed", "conflict", "failed", "dry-run", "planned", "accepted")

Replan = Callable[[dict], PlannedChange | None]
"""Given the fresh raw body of the target, the change the engine plans now (None: nothing to do)."""

_MISSING = object()
_NO_TOKEN = "AuthenticationFailed"  # ArmError.code when no token could be had (transient, raised)

@dataclass(frozen=True)
class WriteResult:
    """What happened to one planned change; ``changed`` maps property paths to before/after."""

    target_id: str
    rule_ids: tuple[str, ...]
    status: str
    attempts: int = 0
    http_status: int | None = None
    message: str = ""
    changed: dict = field(default_factory=dict)
    requests: tuple[dict, ...] = ()
    missing_permission: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "resourceId": self.target_id,
            "rules": list(self.rule_ids),
            "status": self.status,
            "attempts": self.attempts,
            "httpStatus": self.http_status,
            "message": self.message,
            "changed": self.changed,
        }
        if self.requests:
            out["requests"] = list(self.requests)
        if self.missing_permission:
            out["missingPermission"] = self.missing_permission
        return out


# ---------------------------------------------------------------------- diffs
def _named(items: list) -> dict[str, Any] | None:
    """A list of uniquely named objects as a name -> item map (rules, subnets, definitions)."""
    out: dict[str, Any] = {}
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or name.lower() in out:
            return None
        out[name.lower()] = item
    return out


def diff(before: Any, after: Any, path: str = "") -> dict[str, dict[str, Any]]:
    """Property paths whose values differ, e.g. ``properties.securityRules[allow-ssh-in].properties.access``.

    Named list items are matched by name, so an added rule is one entry rather than a shift
    of every index after it.
    """
    if isinstance(before, dict) and isinstance(after, dict):
        out: dict[str, dict[str, Any]] = {}
        for k in [*before, *(k for k in after if k not in before)]:
            out.update(diff(before.get(k, _MISSING), after.get(k, _MISSING), f"{path}.{k}" if path else k))
        return out
    if isinstance(before, list) and isinstance(after, list):
        b, a = _named(before), _named(after)
        if b is not None and a is not None and (b or a):
            names = {**{k: v.get("name") for k, v in b.items()}, **{k: v.get("name") for k, v in a.items()}}
            out = {}
            for k, shown in names.items():
                out.update(diff(b.get(k, _MISSING), a.get(k, _MISSING), f"{path}[{shown}]"))
            return out
    if before is _MISSING and after is _MISSING:
        return {}
    if before is not _MISSING and after is not _MISSING and before == after:
        return {}
    return {path: {"before": None if before is _MISSING else before, "after": None if after is _MISSING else after}}


# ---------------------------------------------------------------------- writing
def _merge_document(edits: list[Edit]) -> dict | None:
    """A JSON merge patch doing exactly ``edits``, or None when they are not plain sets."""
    doc: dict[str, Any] = {}
    for e in edits:
        if e.op != "set" or any(isinstance(s, Sel) for s in e.path) or e.value is None:
            return None
        node = doc
        for seg in e.path[:-1]:
            node = node.setdefault(seg, {})  # type: ignore[index]
            if not isinstance(node, dict):
                return None
        node[e.path[-1]] = e.value  # type: ignore[index]
    return doc


def _result(change: PlannedChange, status: str, attempts: int, message: str, *, http_status: int | None = None,
            changed: dict | None = None, requests: tuple[dict, ...] = (), missing: str | None = None) -> WriteResult:
    return WriteResult(target_id=change.target_id, rule_ids=change.rule_ids, status=status, attempts=attempts,
                       http_status=http_status, message=message, changed=changed or {}, requests=requests,
                       missing_permission=missing)


def planned(change: PlannedChange, current: dict | None) -> WriteResult:
    """An audit-mode entry: what remediation would change, nothing sent."""
    changed: dict = {}
    message = "; ".join(change.summaries)
    if current is not None:
        try:
            changed = diff(current, apply_edits(current, [e for e in change.edits if e.op != "action"]))
        except EditError as exc:
            message = f"{message} (edits do not fit the current body: {exc})"
    return _result(change, "planned", 0, message, changed=changed)


def apply_change(client: ArmClient, change: PlannedChange, replan: Replan, *, current: dict | None = None,
                 dry_run: bool = False, max_attempts: int = 3) -> WriteResult:
    """Apply one planned change with If-Match; re-read and re-plan on 412, at most ``max_attempts`` writes.

    ``current`` is a body (with its etag) the caller has just read, which saves a GET before
    the first write. ``dry_run`` reads as needed but returns the requests instead of sending them.
    """
    from exfilguard.adapters.arm import ArmError

    target = change.target_id
    target_key = ids.key(target)
    body = current
    maybe_landed = False  # a write whose answer was lost may have been applied
    last: ArmError | None = None
    attempt = 0
    must_replan = False
    while attempt < max_attempts:
        attempt += 1
        if body is None:
            try:
                body = client.get(target)
            except ArmError as exc:
                if exc.code == _NO_TOKEN:
                    raise  # not about this resource: the caller retries the whole invocation
                last = exc
                if exc.transient:
                    continue
                return _failure(change, attempt, exc)
            if body is None:
                return _result(change, "failed", attempt, f"{target} no longer exists; nothing written",
                               http_status=404)
        if attempt > 1 or must_replan:
            fresh = replan(body)
            if fresh is None:
                if maybe_landed:
                    return _result(change, "applied", attempt, "applied (the answer to the write was lost; the "
                                   "fresh read shows the fix in place)", http_status=last.status if last else None)
                return _result(change, "not-needed", attempt, "the fresh read needs no fix any more")
            if ids.key(fresh.target_id) != target_key:
                raise ValueError(f"replan for {target} returned a change for {fresh.target_id}")
            change = fresh
        writes = [e for e in change.edits if e.op != "action"]
        actions = [str(e.path[0]) for e in change.edits if e.op == "action"]
        try:
            after = apply_edits(body, writes)
        except EditError as exc:
            if must_replan or attempt > 1:
                return _result(change, "failed", attempt, f"the planned edits do not fit {target}: {exc}")
            must_replan = True  # planned on an older body: ask again about this one
            attempt -= 1
            continue
        changed = diff(body, after)
        if not changed and not actions:
            status = "applied" if maybe_landed else "not-needed"
            return _result(change, status, attempt, "the resource already has every planned change")
        etag = body.get("etag") if isinstance(body.get("etag"), str) else None
        merge = _merge_document(writes)
        patch = merge is not None and (not etag or types.patch_only(ids.type_key(ids.parse(target).type)))
        if changed and not etag and not patch:
            return _result(change, "failed", attempt, f"{target} has no etag, so a full write could overwrite a "
                           "concurrent change; not written", changed=changed)
        if dry_run:
            requests = []
            if changed:
                requests.append(client.describe("PATCH", target, merge, etag) if patch
                                else client.describe("PUT", target, after, etag))
            requests += [client.describe("POST", target, action=a) for a in actions]
            return _result(change, "dry-run", attempt, "; ".join(change.summaries), changed=changed,
                           requests=tuple(requests))
        try:
            if changed:
                if patch:
                    client.patch(target, merge or {}, etag)
                else:
                    client.put(target, after, etag)
            for action in actions:
                client.post_action(target, action)
        except ArmError as exc:
            if exc.code == _NO_TOKEN:
                raise  # no request reached ARM: nothing landed, the invocation is retried whole
            if exc.code == "OperationPending":  # accepted; the caller's time ran out before ARM finished
                return _result(change, "accepted", attempt, exc.message, http_status=202, changed=changed)
            last = exc
            if exc.status == 412:
                maybe_landed = maybe_landed or exc.replayed
                body = None
                continue
            if exc.transient:
                maybe_landed = maybe_landed or exc.status is None or (exc.status or 0) >= 500
                body = None
                continue
            return _failure(change, attempt, exc, changed)
        return _result(change, "applied", attempt, "; ".join(change.summaries), http_status=client.last_status,
                       changed=changed)
    if last is not None and last.status == 412:
        return _result(change, "conflict", attempt, f"{target} changed under every one of {attempt} attempts "
                       "(412 Precondition Failed); left as it is", http_status=412)
    return _failure(change, attempt, last)


def _failure(change: PlannedChange, attempts: int, exc: Any, changed: dict | None = None) -> WriteResult:
    if exc is None:
        return _result(change, "failed", attempts, "gave up without an answer from ARM")
    return _result(change, "failed", attempts, exc.message, http_status=exc.status, changed=changed,
                   missing=exc.action)
