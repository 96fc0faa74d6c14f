"""Fault injection: scripted failures, a seeded failure rate, and concurrent modification.

Faults stand in front of ARM the way its gateway does: they apply before routing, so a
faulted request never touches state, and they never apply to the emulator's admin endpoints.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from tests.armemu import arm
from tests.armemu.ids import ArmPath, key

RESET = "reset"
DEFAULT_CLIENT_ID = "4f5b9d3e-1c2a-4e8b-9f70-0e1f2a3b4c5d"
DEFAULT_OBJECT_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"

Change = Callable[[dict[str, Any]], "dict[str, Any] | None"] | dict[str, Any]
"""A concurrent change: a callable (may mutate in place or return a new body) or a JSON merge patch."""


def _scope_matches(method: str | None, path: str | None, req_method: str, req_path: str) -> bool:
    return (method is None or method.upper() == req_method) and (path is None or path.lower() in req_path.lower())


@dataclass(slots=True)
class Fault:
    """One scripted failure. ``status=None`` drops the connection without an answer.

    ``count`` is how many more matching requests it hits (None: all of them); ``path`` is a
    case-insensitive substring of the request path; ``method`` an HTTP verb.
    """

    status: int | None = None
    method: str | None = None
    path: str | None = None
    count: int | None = None
    retry_after: float | None = None
    hits: int = 0

    @property
    def drop(self) -> bool:
        return self.status is None

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.count <= 0

    def matches(self, method: str, path: str) -> bool:
        return not self.exhausted and _scope_matches(self.method, self.path, method, path)

    def to_json(self) -> dict[str, Any]:
        return {"status": RESET if self.drop else self.status, "method": self.method, "path": self.path,
                "count": self.count, "retryAfter": self.retry_after, "hits": self.hits}

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        if not isinstance(data, dict):
            raise ValueError("a fault must be a JSON object")
        status = data.get("status")
        if data.get("drop") or status == RESET:
            status = None
        elif not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"fault status must be an HTTP status or 'reset', not {status!r}")
        count, retry_after = data.get("count"), data.get("retryAfter", data.get("retry_after"))
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ValueError("fault count must be a non-negative integer")
        if retry_after is not None and not isinstance(retry_after, int | float):
            raise ValueError("fault retryAfter must be a number of seconds")
        return cls(status, _opt_str(data, "method"), _opt_str(data, "path"), count, retry_after)


@dataclass(slots=True)
class FailureRate:
    """A fraction of requests fails at random with one of ``choices``; seeded to be reproducible."""

    rate: float
    seed: int = 0
    choices: tuple[int | str, ...] = (429, 500, 503, RESET)
    retry_after: float | None = 0
    method: str | None = None
    path: str | None = None
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("failure rate must be between 0 and 1")
        if not self.choices or any(c != RESET and not isinstance(c, int) for c in self.choices):
            raise ValueError("failure choices must be HTTP statuses or 'reset'")
        self.rng = random.Random(self.seed)

    def draw(self, method: str, path: str) -> Fault | None:
        if not _scope_matches(self.method, self.path, method, path) or self.rng.random() >= self.rate:
            return None
        choice = self.rng.choice(self.choices)
        return Fault(None if choice == RESET else int(choice), retry_after=self.retry_after, hits=1)

    def to_json(self) -> dict[str, Any]:
        return {"rate": self.rate, "seed": self.seed, "choices": list(self.choices),
                "retryAfter": self.retry_after, "method": self.method, "path": self.path}

    @classmethod
    def from_json(cls, data: Any) -> FailureRate:
        if not isinstance(data, dict) or not isinstance(data.get("rate"), int | float):
            raise ValueError("failureRate must be an object with a numeric 'rate'")
        choices = data.get("choices", [429, 500, 503, RESET])
        if not isinstance(choices, list):
            raise ValueError("failureRate.choices must be a list")
        return cls(float(data["rate"]), int(data.get("seed", 0)), tuple(choices),
                   data.get("retryAfter", 0), _opt_str(data, "method"), _opt_str(data, "path"))


@dataclass(slots=True)
class ConcurrentChange:
    change: Change | None
    remaining: int = 1


class FaultPlan:
    """Everything configured to go wrong; guarded by the emulator's lock."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.failure_rate: FailureRate | None = None
        self.latency = 0.0
        self.changes: dict[str, list[ConcurrentChange]] = {}

    def clear(self) -> None:
        self.faults.clear()
        self.failure_rate = None
        self.changes.clear()

    def pick(self, method: str, path: str) -> Fault | None:
        """The failure this request meets, if any; scripted faults first, in the order added."""
        for fault in self.faults:
            if fault.matches(method, path):
                fault.hits += 1
                if fault.count is not None:
                    fault.count -= 1
                return fault
        return self.failure_rate.draw(method, path) if self.failure_rate else None

    def arm_change(self, resource_id: str, change: Change | None, count: int) -> None:
        self.changes.setdefault(key(resource_id), []).append(ConcurrentChange(change, count))

    def take_change(self, resource_key: str) -> ConcurrentChange | None:
        pending = self.changes.get(resource_key)
        if not pending:
            return None
        head = pending[0]
        head.remaining -= 1
        if head.remaining <= 0:
            pending.pop(0)
            if not pending:
                del self.changes[resource_key]
        return head

    def to_json(self) -> dict[str, Any]:
        return {
            "faults": [f.to_json() for f in self.faults],
            "latency": self.latency,
            "failureRate": self.failure_rate.to_json() if self.failure_rate else None,
            "concurrentModifications": [
                {"id": k, "count": sum(c.remaining for c in v)} for k, v in self.changes.items()
            ],
        }


def _opt_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def action_and_scope(method: str, path: ArmPath | None, raw_path: str) -> tuple[str, str]:
    """The RBAC action ARM checks for this request, e.g. ``Microsoft.Network/networkSecurityGroups/write``."""
    if path is None:
        return f"Microsoft.Resources/subscriptions/{_VERBS.get(method, 'read')}", raw_path
    type_ = arm.canonical_type(path.type)
    if path.is_collection:
        owner = path.parent
        scope = owner.resource_id if owner is not None else path.scope
        if method == "POST":
            return f"{type_}/action", scope
        return f"{type_}/read", scope
    return f"{type_}/{_VERBS.get(method, 'read')}", path.resource_id


_VERBS = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete", "POST": "action"}


def fault_body(status: int, method: str, path: ArmPath | None, raw_path: str,
               retry_after: float | None) -> dict[str, Any]:
    """The error body ARM's front door answers with for this status."""
    sub = path.subscription if path else "00000000-0000-0000-0000-000000000000"
    if status == 403:
        action, scope = action_and_scope(method, path, raw_path)
        return arm.error(
            "AuthorizationFailed",
            f"The client '{DEFAULT_CLIENT_ID}' with object id '{DEFAULT_OBJECT_ID}' does not have authorization "
            f"to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently "
            "granted, please refresh your credentials.")
    if status == 429:
        kind = "read" if method in ("GET", "HEAD") else "write"
        wait = format_seconds(retry_after if retry_after is not None else 0)
        return arm.error(
            "SubscriptionRequestsThrottled",
            f"Number of '{kind}' requests for subscription '{sub}' actor '{DEFAULT_OBJECT_ID}' exceeded. "
            f"Please try again after '{wait}' seconds after additional tasks are completed.")
    if status == 500:
        return arm.error("InternalServerError", "Encountered internal server error. The tracking id is "
                         f"'{DEFAULT_OBJECT_ID}'.")
    if status == 503:
        return arm.error("ServiceUnavailable", "The server is currently unable to handle the request due to a "
                         "temporary overload or maintenance. Please retry the request later.")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return arm.error(phrase.title().replace(" ", "").replace("-", ""), f"Injected fault: {status} {phrase}.")


def format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
