"""ARM resource ID arithmetic.

ARM IDs are compared case-insensitively everywhere (Resource Graph lowercases types, event
subjects mix ``resourcegroups`` and ``resourceGroups``), so every index in the product is
keyed by :func:`key`, while the original spelling is kept for reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEGMENT = re.compile(r"^[^/?#\s]+$")


class BadResourceId(ValueError):
    """An ARM resource ID that does not have the ``/subscriptions/<id>/...`` shape."""


def key(resource_id: str) -> str:
    """The comparison key of an ARM ID: lowercase, no trailing slash, no stray spaces."""
    return resource_id.strip().rstrip("/").replace(" /", "/").lower()


@dataclass(frozen=True, slots=True)
class ResourceId:
    """A parsed ARM resource ID: ``/subscriptions/s/resourceGroups/g/providers/NS/t1/n1/t2/n2``."""

    subscription: str
    resource_group: str | None
    namespace: str | None
    types: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def type(self) -> str:
        """The full resource type, e.g. ``Microsoft.Network/virtualNetworks/subnets``."""
        if not self.namespace:
            return "Microsoft.Resources/resourceGroups" if self.resource_group else "Microsoft.Resources/subscriptions"
        return "/".join((self.namespace, *self.types))

    @property
    def name(self) -> str:
        if self.names:
            return self.names[-1]
        return self.resource_group or self.subscription

    @property
    def parent(self) -> ResourceId | None:
        """The parent resource (a subnet's VNet, a rule's NSG); None for top-level resources."""
        if len(self.types) <= 1:
            return None
        return ResourceId(self.subscription, self.resource_group, self.namespace, self.types[:-1], self.names[:-1])

    def ancestor(self, depth: int) -> ResourceId:
        """The resource ``depth`` levels up (0 is this one)."""
        rid: ResourceId = self
        for _ in range(depth):
            parent = rid.parent
            if parent is None:
                raise BadResourceId(f"{self} has no parent {depth} levels up")
            rid = parent
        return rid

    def child(self, child_type: str, name: str) -> ResourceId:
        return ResourceId(self.subscription, self.resource_group, self.namespace, (*self.types, child_type),
                          (*self.names, name))

    def __str__(self) -> str:
        out = f"/subscriptions/{self.subscription}"
        if self.resource_group:
            out += f"/resourceGroups/{self.resource_group}"
        if self.namespace:
            out += f"/providers/{self.namespace}"
            for t, n in zip(self.types, self.names, strict=True):
                out += f"/{t}/{n}"
        return out

    @property
    def key(self) -> str:
        return key(str(self))


def parse(resource_id: str) -> ResourceId:
    """Parse an ARM ID; raises :class:`BadResourceId` with the reason when it is not one.

    Path tricks (``..``, empty segments, query strings) are rejected rather than normalised:
    IDs arrive from HTTP bodies and events, and a lenient parser would let a caller address
    a resource other than the one it names.
    """
    if not isinstance(resource_id, str):
        raise BadResourceId(f"resource ID must be a string, got {type(resource_id).__name__}")
    text = resource_id.strip()
    if not text.startswith("/"):
        raise BadResourceId(f"resource ID must start with '/subscriptions/': {resource_id!r}")
    path = text.rstrip("/")
    parts = path.split("/")[1:]
    for p in parts:
        if p.strip() == "":
            raise BadResourceId(f"resource ID has an empty segment: {resource_id!r}")
        if p in (".", "..") or not _SEGMENT.match(p.strip()):
            raise BadResourceId(f"resource ID has an invalid segment {p!r}: {resource_id!r}")
    parts = [p.strip() for p in parts]
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        raise BadResourceId(f"resource ID must start with '/subscriptions/<id>': {resource_id!r}")
    sub = parts[1]
    rest = parts[2:]
    rg = None
    if rest and rest[0].lower() == "resourcegroups":
        if len(rest) < 2:
            raise BadResourceId(f"resource ID names no resource group: {resource_id!r}")
        rg = rest[1]
        rest = rest[2:]
    if not rest:
        return ResourceId(sub, rg, None, (), ())
    if rest[0].lower() != "providers" or len(rest) < 4:
        raise BadResourceId(f"resource ID has no '/providers/<namespace>/<type>/<name>' part: {resource_id!r}")
    namespace = rest[1]
    pairs = rest[2:]
    if len(pairs) % 2:
        raise BadResourceId(f"resource ID has a type without a name: {resource_id!r}")
    types = tuple(pairs[0::2])
    names = tuple(pairs[1::2])
    return ResourceId(sub, rg, namespace, types, names)


def try_parse(resource_id: object) -> ResourceId | None:
    try:
        return parse(resource_id)  # type: ignore[arg-type]
    except BadResourceId:
        return None


def parent_id(child_id: str) -> str:
    """The parent of a child resource ID by string arithmetic (no validation): the hot path
    of parsing thousands of nested rules and subnets whose IDs ARM already validated."""
    return child_id.rstrip("/").rsplit("/", 2)[0]


def type_of(resource_id: str) -> str | None:
    """The resource type an ID shows, or None when it is not an ARM ID."""
    rid = try_parse(resource_id)
    return rid.type if rid else None


def type_key(resource_type: str) -> str:
    return resource_type.strip().lower()
