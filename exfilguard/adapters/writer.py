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

The write is a small state machine (:class:`Step`): READ -> PLAN -> WRITE -> CONFIRM, where
each state's handler (``_Run.read`` ...) returns the next state or the result and says which
transitions it makes. 412 and transient failures go back to READ as a new attempt (the plan is
redone on the fresh body); 429 and 5xx are first waited out inside each request by the ARM
client's retry policy (Retry-After honoured), which also follows a write's long-running
operation. A read that is not the whole resource ends the run: nothing is written back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from exfilguard.core import ids, types
from exfilguard.core.fixes import Edit, EditError, PlannedChange, apply_edits

if TYPE_CHECKING:
    from exfilguard.adapters.arm import ArmClient, ArmError

WriteStatus = Literal["applied", "not-needed", "conflict", "failed", "dry-run", "planned", "accepted"]
"""``accepted``: ARM took the write, its operation still running when the caller's time ran out."""


class Step(StrEnum):
    """The states of one write (see the module docstring)."""

    READ = "read"  # GET the target; skipped when the caller has just read it
    PLAN = "plan"  # re-plan on a fresh body when needed, fit the edits, choose PUT, PATCH or POST
    WRITE = "write"  # the conditional write (If-Match) and actions, each followed to its operation's end
    CONFIRM = "confirm"  # what ARM's answer means: done, or another attempt


Replan = Callable[[dict], PlannedChange | None]
"""Given the fresh raw body of the target, the change the engine plans now (None: nothing to do)."""

_MISSING = object()
_NO_TOKEN = "AuthenticationFailed"  # ArmError.code when no token could be had (transient, raised)

@dataclass(frozen=True)
class WriteResult:
    """What happened to one planned change; ``changed`` maps property paths to before/after."""

    target_id: str
    rule_ids: tuple[str, ...]
    status: WriteStatus
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
        path = [s for s in e.path if isinstance(s, str)]
        if e.op != "set" or len(path) != len(e.path) or e.value is None:
            return None
        node = doc
        for seg in path[:-1]:
            node = node.setdefault(seg, {})
            if not isinstance(node, dict):
                return None
        node[path[-1]] = e.value
    return doc


def _result(change: PlannedChange, status: WriteStatus, attempts: int, message: str, *, http_status: int | None = None,
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
    run = _Run(client, change, replan, dry_run, max_attempts, body=current)
    if max_attempts < 1:
        return run.give_up()
    run.attempt = 1
    return run.until_done(Step.READ if current is None else Step.PLAN)


@dataclass(frozen=True)
class _Request:
    """What PLAN decided to send: the body after the edits, or a merge patch, plus actions."""

    after: dict
    changed: dict
    actions: tuple[str, ...]
    etag: str | None
    merge: dict | None
    patch: bool

    @classmethod
    def of(cls, change: PlannedChange, body: dict) -> _Request:
        """The request doing ``change`` on top of ``body``; :class:`EditError` when it does not fit."""
        writes = [e for e in change.edits if e.op != "action"]
        after = apply_edits(body, writes)
        etag = body.get("etag") if isinstance(body.get("etag"), str) else None
        merge = _merge_document(writes)
        patch = merge is not None and (not etag or types.patch_only(ids.type_key(ids.parse(change.target_id).type)))
        return cls(after, diff(body, after), tuple(str(e.path[0]) for e in change.edits if e.op == "action"),
                   etag, merge, patch)

    def describe(self, client: ArmClient, target: str) -> tuple[dict, ...]:
        """The requests :meth:`send` would make, for a dry run."""
        requests = []
        if self.changed:
            requests.append(client.describe("PATCH", target, self.merge, self.etag) if self.patch
                            else client.describe("PUT", target, self.after, self.etag))
        requests += [client.describe("POST", target, action=a) for a in self.actions]
        return tuple(requests)

    def send(self, client: ArmClient, target: str) -> None:
        """The conditional write, then the actions; each call follows its long-running operation."""
        if self.changed:
            if self.patch:
                client.patch(target, self.merge or {}, self.etag)
            else:
                client.put(target, self.after, self.etag)
        for action in self.actions:
            client.post_action(target, action)


def _not_whole(body: Any, target_key: str) -> str:
    """Why a read cannot be the whole resource ("" when it can): a PUT built on part of a body
    would delete the rest (an NSG read without its rules, written back, loses them)."""
    if not isinstance(body, dict):
        return "not a JSON object"
    rid = body.get("id")
    if not isinstance(rid, str) or ids.key(rid) != target_key:
        return f"its id is {rid!r}"
    props = body.get("properties")
    if not isinstance(props, dict):
        return "it has no properties object"
    children = types.inline_children(ids.type_key(ids.parse(rid).type))
    if children and not isinstance(props.get(children), list):
        return f"it has no {children} list"
    return ""


@dataclass
class _Run:
    """One change on its way through the states of :class:`Step`; each handler returns the next
    state or the final :class:`WriteResult`.

    Termination: every way back to READ starts a new attempt (at most ``max_attempts``), and
    PLAN -> PLAN happens at most once per body (a caller's plan becomes ``stale``, then ``fresh``).
    """

    client: ArmClient
    change: PlannedChange
    replan: Replan
    dry_run: bool
    max_attempts: int
    body: dict | None = None
    attempt: int = 0
    plan_from: Literal["caller", "stale", "fresh"] = "caller"  # what ``change`` was planned on
    maybe_landed: bool = False  # a write whose answer was lost may have been applied
    last: ArmError | None = None  # the last refusal that started another attempt
    request: _Request | None = None  # PLAN -> WRITE
    answer: ArmError | None = None  # WRITE -> CONFIRM (None: ARM accepted and finished)

    @property
    def target(self) -> str:
        return self.change.target_id

    def until_done(self, step: Step) -> WriteResult:
        handlers: dict[Step, Callable[[], Step | WriteResult]] = {
            Step.READ: self.read, Step.PLAN: self.plan, Step.WRITE: self.write, Step.CONFIRM: self.confirm}
        state: Step | WriteResult = step
        while isinstance(state, Step):
            state = handlers[state]()
        return state

    def result(self, status: WriteStatus, message: str, **kwargs: Any) -> WriteResult:
        return _result(self.change, status, self.attempt, message, **kwargs)

    # ------------------------------------------------------------------ the states
    def read(self) -> Step | WriteResult:
        """READ -> PLAN with a whole body; -> READ (next attempt) on a transient refusal; else done."""
        from exfilguard.adapters.arm import ArmError

        try:
            body = self.client.get(self.target)
        except ArmError as exc:
            if exc.code == _NO_TOKEN:
                raise  # not about this resource: the caller retries the whole invocation
            return self.again(exc) if exc.transient else self.failure(exc)
        if body is None:
            return self.result("failed", f"{self.target} no longer exists; nothing written", http_status=404)
        problem = _not_whole(body, ids.key(self.target))
        if problem:
            return self.result("failed", f"{self.target}: ARM's answer is not the whole resource ({problem}); "
                               "nothing written", http_status=200)
        self.body = body
        return Step.PLAN

    def plan(self) -> Step | WriteResult:
        """PLAN -> WRITE; -> PLAN once when the edits were planned on an older body; else done."""
        assert self.body is not None
        if self.plan_from == "stale":
            fresh = self.replan(self.body)
            if fresh is None:
                if self.maybe_landed:
                    return self.result("applied", "applied (the answer to the write was lost; the fresh read shows "
                                       "the fix in place)", http_status=self.last.status if self.last else None)
                return self.result("not-needed", "the fresh read needs no fix any more")
            if ids.key(fresh.target_id) != ids.key(self.target):
                raise ValueError(f"replan for {self.target} returned a change for {fresh.target_id}")
            self.change, self.plan_from = fresh, "fresh"
        try:
            request = _Request.of(self.change, self.body)
        except EditError as exc:
            if self.plan_from == "fresh":
                return self.result("failed", f"the planned edits do not fit {self.target}: {exc}")
            self.plan_from = "stale"  # planned on an older body: ask again about this one
            return Step.PLAN
        if not request.changed and not request.actions:
            return self.result("applied" if self.maybe_landed else "not-needed",
                               "the resource already has every planned change")
        if request.changed and not request.etag and not request.patch:
            return self.result("failed", f"{self.target} has no etag, so a full write could overwrite a "
                               "concurrent change; not written", changed=request.changed)
        self.request = request
        return Step.WRITE

    def write(self) -> Step | WriteResult:
        """WRITE -> CONFIRM with ARM's answer, once the client has followed the operation; -> dry-run."""
        from exfilguard.adapters.arm import ArmError

        assert self.request is not None
        if self.dry_run:
            return self.result("dry-run", "; ".join(self.change.summaries), changed=self.request.changed,
                               requests=self.request.describe(self.client, self.target))
        try:
            self.request.send(self.client, self.target)
            self.answer = None
        except ArmError as exc:
            if exc.code == _NO_TOKEN:
                raise  # no request reached ARM: nothing landed, the invocation is retried whole
            self.answer = exc
        return Step.CONFIRM

    def confirm(self) -> Step | WriteResult:
        """CONFIRM: applied or accepted; -> READ (next attempt) on 412 or a transient failure; else failed."""
        assert self.request is not None
        exc, changed = self.answer, self.request.changed
        if exc is None:
            return self.result("applied", "; ".join(self.change.summaries), http_status=self.client.last_status,
                               changed=changed)
        if exc.code == "OperationPending":  # accepted; the caller's time ran out before ARM finished
            return self.result("accepted", exc.message, http_status=202, changed=changed)
        if exc.status == 412:
            self.maybe_landed = self.maybe_landed or exc.replayed
            return self.again(exc)
        if exc.transient:
            self.maybe_landed = self.maybe_landed or exc.status is None or exc.status >= 500
            return self.again(exc)
        return self.failure(exc, changed)

    # ------------------------------------------------------------------ attempts
    def again(self, exc: ArmError) -> Step | WriteResult:
        """Another read-modify-write (READ, then a re-plan on what it reads), if attempts are left."""
        self.last = exc
        if self.attempt >= self.max_attempts:
            return self.give_up()
        self.attempt += 1
        self.body, self.plan_from = None, "stale"
        return Step.READ

    def give_up(self) -> WriteResult:
        if self.last is not None and self.last.status == 412:
            return self.result("conflict", f"{self.target} changed under every one of {self.attempt} attempts "
                               "(412 Precondition Failed); left as it is", http_status=412)
        return self.failure(self.last)

    def failure(self, exc: ArmError | None, changed: dict | None = None) -> WriteResult:
        if exc is None:
            return self.result("failed", "gave up without an answer from ARM")
        return self.result("failed", exc.message, http_status=exc.status, changed=changed, missing=exc.action)
