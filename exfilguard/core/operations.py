"""The ARM operations ExfilGuard reacts to, and which guarded resource each one touches.

Derived from the descriptors' ``reactions`` (:mod:`exfilguard.core.types`), the single source
of truth for three things that must agree: the Event Grid handler's routing, the Event Grid
subscription's ``data.operationName`` filter in ``infra/`` (a test checks both are the same
set), and docs/ (the user's documentation). Event Grid allows at most 25 values in one
``StringIn`` filter: infra/main.bicep splits the list over as many event subscriptions as that
takes.
"""

from __future__ import annotations

from dataclasses import dataclass

from exfilguard.core import types


@dataclass(frozen=True, slots=True)
class Operation:
    """``levels_up`` walks from the event's resource URI to the resource to re-read
    (a security rule write re-reads its NSG: one level up)."""

    name: str
    reread_type: str
    levels_up: int
    deleted: bool = False


_TABLE: tuple[Operation, ...] = tuple(
    Operation(f"{t.arm_type}/{r.path}", t.arm_type, r.levels_up, r.deleted)
    for t in types.TYPES for r in t.reactions
)

OPERATIONS: dict[str, Operation] = {op.name.lower(): op for op in _TABLE}
MAPPED_OPERATION_NAMES: tuple[str, ...] = tuple(op.name for op in _TABLE)

# Azure Resource Notifications carry no operation name, only the resource type: a type that
# reacts is re-read itself, a child evaluated around its parent re-reads the parent.
RESOURCE_TYPES: dict[str, Operation] = {
    t.key: Operation(t.arm_type, t.arm_type, 0) for t in types.TYPES if t.reactions
} | {
    t.key: Operation("", types.BY_KEY[t.parent_key].arm_type, 1)
    for t in types.TYPES if t.around_parent and t.parent_key is not None
}


def lookup(operation_name: str | None) -> Operation | None:
    if not operation_name:
        return None
    return OPERATIONS.get(operation_name.strip().lower())
