"""ARM request-path arithmetic for the emulator.

Self-contained on purpose: the emulator is the yardstick the product's own ID code is
measured against, so it must not borrow that code.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def key(resource_id: str) -> str:
    """Comparison key of an ARM ID: ARM compares IDs and types case-insensitively."""
    return resource_id.strip().rstrip("/").lower()


@dataclass(frozen=True, slots=True)
class ArmPath:
    """A resource (``names`` as long as ``types``) or a collection (one name short) under a provider.

    ``/subscriptions/s/resourceGroups/g/providers/NS/t1/n1/t2`` is the ``t2`` collection of ``n1``.
    Spelling is kept as received; :attr:`key` is what indexes compare. The ID and key are computed
    once, at construction, because every request derives several paths.
    """

    subscription: str
    resource_group: str | None
    namespace: str
    types: tuple[str, ...]
    names: tuple[str, ...]
    resource_id: str = field(init=False, compare=False)
    key: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        out = [self.scope, "/providers/", self.namespace]
        for i, t in enumerate(self.types):
            out += ("/", t)
            if i < len(self.names):
                out += ("/", self.names[i])
        rid = "".join(out)
        object.__setattr__(self, "resource_id", rid)
        object.__setattr__(self, "key", rid.lower())

    @property
    def is_collection(self) -> bool:
        return len(self.names) < len(self.types)

    @property
    def type(self) -> str:
        """The resource type, e.g. ``Microsoft.Network/virtualNetworks/subnets`` (collections: its items)."""
        return "/".join((self.namespace, *self.types))

    @property
    def name(self) -> str:
        return self.names[-1]

    @property
    def scope(self) -> str:
        """``/subscriptions/s`` or ``/subscriptions/s/resourceGroups/g``: what RBAC calls the container."""
        if self.resource_group is None:
            return f"/subscriptions/{self.subscription}"
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"

    @property
    def parent(self) -> ArmPath | None:
        """The enclosing resource (a collection's owner, a child's parent); None at top level."""
        depth = len(self.names) - 1 if not self.is_collection else len(self.names)
        if depth < 1:
            return None
        return ArmPath(self.subscription, self.resource_group, self.namespace, self.types[:depth],
                       self.names[:depth])

    @property
    def top(self) -> ArmPath:
        return ArmPath(self.subscription, self.resource_group, self.namespace, self.types[:1], self.names[:1])

    def child(self, child_type: str, name: str) -> ArmPath:
        return ArmPath(self.subscription, self.resource_group, self.namespace, (*self.types, child_type),
                       (*self.names, name))


def parse(path: str) -> ArmPath | None:
    """Parse a decoded URL path or resource ID; None when it is not a provider resource or collection."""
    parts = path.strip().strip("/").split("/")
    if len(parts) < 4 or parts[0].lower() != "subscriptions" or "" in parts:
        return None
    subscription, rest = parts[1], parts[2:]
    group: str | None = None
    if rest[0].lower() == "resourcegroups":
        if len(rest) < 4:
            return None
        group, rest = rest[1], rest[2:]
    if rest[0].lower() != "providers" or len(rest) < 3:
        return None
    namespace, tail = rest[1], rest[2:]
    types = tuple(tail[::2])
    if "providers" in (t.lower() for t in types):
        return None  # extension resources are out of scope
    return ArmPath(subscription, group, namespace, types, tuple(tail[1::2]))
