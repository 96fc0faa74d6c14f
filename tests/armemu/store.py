"""The resource store: ARM documents indexed so lookups are O(1) and list pages O(log n + page).

Children (rules, subnets, definitions, computes, versions) are entries of their own, as in ARM's
model, and are folded back into their parent's body only when a body is composed for a response.
Stored bodies are never mutated in place (writes replace them), which keeps composition cheap.
Not thread-safe by itself: the emulator holds its lock around every call.
"""

from __future__ import annotations

import bisect
import copy
import gc
import itertools
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.armemu import arm
from tests.armemu.ids import ArmPath, key, parse

Mode = Literal["load", "put", "set"]
"""``load``: snapshot merge; ``put``: a client's PUT (read-only fields ARM's); ``set``: a test's override."""


class StoreError(Exception):
    """A request ARM would refuse; carries the HTTP status and ARM error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_ETAG_PREFIX = str(uuid.uuid4())[:24]
_ETAG_SERIAL = itertools.count(1)


def new_etag() -> str:
    """A fresh uuid-shaped weak etag; a per-process prefix plus a serial is unique and cheap."""
    return f'W/"{_ETAG_PREFIX}{next(_ETAG_SERIAL):012x}"'


@dataclass(slots=True, eq=False)
class Entry:
    """One stored resource; ``body`` lacks ``etag`` and any inline child list (composed on read)."""

    path: ArmPath
    body: dict[str, Any]
    etag: str
    pending_until: float = 0.0
    pending_state: str = ""
    key: str = field(init=False)
    type_key: str = field(init=False)
    parent_key: str | None = field(init=False)
    top_key: str = field(init=False)

    def __post_init__(self) -> None:
        self.key = self.path.key
        self.type_key = self.path.type.lower()
        depth = len(self.path.names) - 1  # levels below the top-level resource; keys end in /type/name pairs
        self.parent_key = self.key.rsplit("/", 2)[0] if depth else None
        self.top_key = self.key.rsplit("/", 2 * depth)[0] if depth else self.key

    @property
    def id(self) -> str:
        return self.body["id"]

    @property
    def slot(self) -> tuple[str, str]:
        """Where the entry sits among its siblings: (parent key, lowercase child type segment)."""
        assert self.parent_key is not None
        return self.parent_key, self.path.types[-1].lower()


class SortedKeys:
    """Keys of one list endpoint in sorted order, so a page is a bisect away from its skip token."""

    __slots__ = ("_keys", "_sorted")

    def __init__(self) -> None:
        self._keys: list[str] = []
        self._sorted = True

    def add(self, k: str, *, bulk: bool) -> None:
        if bulk:  # snapshot load: append now, sort once at the end instead of n insertions
            self._keys.append(k)
            self._sorted = False
        else:
            self._ensure_sorted()
            bisect.insort(self._keys, k)

    def discard(self, k: str) -> None:
        self._ensure_sorted()
        i = bisect.bisect_left(self._keys, k)
        if i < len(self._keys) and self._keys[i] == k:
            del self._keys[i]

    def page(self, after: str | None, size: int) -> tuple[list[str], bool]:
        """Up to ``size`` keys after ``after``, and whether more follow."""
        self._ensure_sorted()
        start = bisect.bisect_right(self._keys, after) if after is not None else 0
        return self._keys[start:start + size], start + size < len(self._keys)

    def _ensure_sorted(self) -> None:
        if not self._sorted:
            self._keys.sort()
            self._sorted = True


_SUBNET_TYPE = "microsoft.network/virtualnetworks/subnets"


def _props_without_state(item: dict[str, Any]) -> dict[str, Any]:
    props = item.get("properties")
    props = dict(props) if isinstance(props, dict) else {}
    props.pop("provisioningState", None)
    return props


class Store:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.entries: dict[str, Entry] = {}
        self._kids: dict[tuple[str, str], dict[str, None]] = {}
        self._nested: dict[str, set[str]] = {}
        self._lists: dict[tuple[str, str, str | None], SortedKeys] = {}
        self._standalone: frozenset[str] = frozenset()
        self._bulk = False
        # ARM's read-only back-references (arm.BACKREFS): target key -> prop -> {source key: source id},
        # e.g. an NSG's properties.subnets[] or a firewall policy's properties.firewalls[].
        self._backrefs: dict[str, dict[str, dict[str, str]]] = {}
        self._refs_of: dict[str, tuple[tuple[str, str], ...]] = {}

    # ---- loading -------------------------------------------------------------------------------

    def load(self, resources: Iterable[Any]) -> None:
        """Merge snapshot resources: last duplicate wins, a standalone child beats its inline copy."""
        unique: dict[str, tuple[ArmPath, dict[str, Any]]] = {}
        for n, obj in enumerate(resources):
            if not isinstance(obj, dict):
                raise ValueError(f"item {n} is not a JSON object")
            rid = obj.get("id")
            path = parse(rid) if isinstance(rid, str) else None
            if path is None or path.is_collection:
                raise ValueError(f"item {n} has no ARM resource id (id={rid!r})")
            unique[path.key] = (path, obj)
        self._standalone = frozenset(unique)
        self._bulk = True
        collecting = gc.isenabled()
        gc.disable()  # a 100k-resource load otherwise spends most of its time in cyclic GC passes
        try:
            for path, obj in unique.values():
                self.write(path, obj, mode="load")
        finally:
            if collecting:
                gc.enable()
            self._bulk = False
            self._standalone = frozenset()

    # ---- reads ---------------------------------------------------------------------------------

    def get(self, resource_key: str) -> Entry | None:
        return self.entries.get(resource_key)

    def compose(self, e: Entry, *, state: str | None = None) -> dict[str, Any]:
        """The body ARM would answer with: etag, inline children, live provisioningState.

        Shares structure with the store, so serialise it before the lock is released.
        """
        b = e.body
        out = {"name": b["name"], "id": b["id"], "etag": e.etag}
        out.update(b)
        spec = arm.INLINE.get(e.type_key)
        pending = state or (e.pending_state if e.pending_until > self._clock() else None)
        backref_props = arm.BACKREF_PROPS.get(e.type_key, ())
        referenced = arm.REFERENCED_CHILDREN.get(e.type_key)
        if spec is None and not pending and e.type_key != arm.NSG_TYPE and not backref_props and referenced is None:
            return out
        props = dict(b["properties"])
        if pending:
            props["provisioningState"] = pending
        if spec is not None:
            kids = self._kids.get((e.key, spec.segment.lower()), {})
            props[spec.prop] = [self.compose(self.entries[k]) for k in kids if k in self.entries]
        if e.type_key == arm.NSG_TYPE:
            props.pop("defaultSecurityRules", None)  # after securityRules, where ARM puts it
            props["defaultSecurityRules"] = self.default_rules(e)
        refs = self._backrefs.get(e.key, {})
        for prop in backref_props:
            props[prop] = [{"id": sid} for sid in dict.fromkeys(refs.get(prop, {}).values())]
        if referenced is not None:
            kids = self._kids.get((e.key, referenced.segment.lower()), {})
            props[referenced.prop] = [{"id": self.entries[k].id} for k in kids if k in self.entries]
        out["properties"] = props
        return out

    def default_rules(self, nsg: Entry) -> list[dict[str, Any]]:
        """Default rules share their NSG's etag: ARM stores them in the NSG's document."""
        rules = nsg.body["properties"].get("defaultSecurityRules") or arm.default_security_rules(nsg.id)
        return [{"name": r.get("name"), "id": r.get("id"), "etag": nsg.etag, **r} for r in rules]

    def snapshot_body(self, e: Entry) -> dict[str, Any]:
        """A composed body the caller may keep and mutate."""
        return copy.deepcopy(self.compose(e))

    def missing_ancestor(self, path: ArmPath) -> ArmPath | None:
        """The first absent resource on the way down to ``path`` (itself included), top-down."""
        for depth in range(1, len(path.names) + 1):
            p = ArmPath(path.subscription, path.resource_group, path.namespace, path.types[:depth],
                        path.names[:depth])
            if p.type.lower() in arm.PATH_ONLY_TYPES and depth < len(path.names):
                continue
            if p.key not in self.entries:
                return p
        return None

    def page(self, path: ArmPath, token: str | None, size: int) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a list endpoint and the opaque token of the next (None on the last page)."""
        if len(path.types) == 1:
            rg = path.resource_group.lower() if path.resource_group is not None else None
            keys_ = self._lists.get((path.type.lower(), path.subscription.lower(), rg))
            keys, more = keys_.page(token, size) if keys_ else ([], False)
            return [self.compose(self.entries[k]) for k in keys], (keys[-1] if more and keys else None)
        owner = path.parent
        assert owner is not None
        segment = path.types[-1].lower()
        parent = self.entries.get(owner.key)
        if segment == arm.DEFAULT_RULES_SEGMENT and parent is not None and parent.type_key == arm.NSG_TYPE:
            items = self.default_rules(parent)
        else:
            kids = self._kids.get((owner.key, segment), {})
            items = [self.compose(self.entries[k]) for k in kids if k in self.entries]
            if not items and f"{owner.type.lower()}/{segment}" in arm.PATH_ONLY_TYPES:
                items = self._containers(owner, segment)
        offset = int(token) if token and token.isdigit() else 0
        end = offset + size
        return items[offset:end], (str(end) if end < len(items) else None)

    def _containers(self, owner: ArmPath, segment: str) -> list[dict[str, Any]]:
        """Containers ARM keeps above versions (environments), derived from the stored versions:
        snapshots carry versions only, and a sweep finds versions by listing containers."""
        prefix = f"{owner.key}/{segment}/"
        names: dict[str, str] = {}
        latest: dict[str, str] = {}
        for k in sorted(self._nested.get(owner.key.rsplit("/", 2 * (len(owner.names) - 1))[0]
                                         if len(owner.names) > 1 else owner.key, ())):
            if k.startswith(prefix):
                e = self.entries.get(k)
                if e is not None and len(e.path.names) == len(owner.names) + 2:
                    lower = e.path.names[len(owner.names)].lower()
                    names.setdefault(lower, e.path.names[len(owner.names)])
                    version = e.path.names[-1]
                    if lower not in latest or _version_order(version) > _version_order(latest[lower]):
                        latest[lower] = version
        out = []
        for lower, name in names.items():
            cid = f"{owner.resource_id}/{segment}/{name}"
            # Like ARM, the container names its latest version (what a sweep checks).
            out.append({"id": cid, "name": name,
                        "type": "Microsoft.MachineLearningServices/workspaces/environments",
                        "properties": {"isArchived": False, "latestVersion": latest[lower]}})
        return out

    # ---- writes --------------------------------------------------------------------------------

    def write(self, path: ArmPath, body: dict[str, Any], *, mode: Mode, pending_state: str = "",
              lro_delay: float = 0.0, touch_parent: bool = True) -> tuple[Entry, bool]:
        """Create or replace one resource (and, for inline parents, its child set); returns (entry, created)."""
        existing = self.entries.get(path.key)
        type_key = path.type.lower()
        given_id, given_type = body.get("id"), body.get("type")
        if existing is not None:
            rid, type_ = existing.id, existing.body["type"]
        else:
            keep = mode != "put"
            rid = given_id.strip().rstrip("/") if keep and isinstance(given_id, str) \
                and key(given_id) == path.key else path.resource_id
            type_ = given_type if keep and isinstance(given_type, str) and given_type.lower() == type_key \
                else arm.canonical_type(path.type)
        stored_path = path if rid == path.resource_id else (parse(rid) or path)
        stored: dict[str, Any] = {"name": stored_path.name, "id": rid, "type": type_}
        stored.update((k, v) for k, v in body.items() if k not in ("etag", "id", "name", "type"))
        raw_props = body.get("properties")
        props: dict[str, Any] = dict(raw_props) if isinstance(raw_props, dict) else {}
        if mode == "put":
            props["provisioningState"] = "Succeeded"
        else:
            props.setdefault("provisioningState", "Succeeded")
        self._read_only_fields(stored_path, type_key, props, existing, mode)
        spec = arm.INLINE.get(type_key)
        inline = props.pop(spec.prop, None) if spec else None
        children = self._plan_children(stored_path, spec, inline, mode) if spec else None
        stored["properties"] = props

        given_etag = body.get("etag")
        etag = given_etag if mode == "load" and isinstance(given_etag, str) and given_etag else new_etag()
        if existing is not None:
            entry = existing
            entry.body, entry.etag = stored, etag
        else:
            entry = Entry(stored_path, stored, etag)
            self._index(entry)
        if type_key in arm.BACKREFS:
            self._update_refs(entry)
        entry.pending_state = pending_state
        entry.pending_until = self._clock() + lro_delay if pending_state else 0.0
        if spec is not None and children is not None:
            self._write_children(entry, spec, children, mode)
        if mode != "load" and touch_parent:
            self._touch_parent(entry)
        return entry, existing is None

    def delete(self, resource_key: str, *, touch_parent: bool = True) -> Entry | None:
        """Remove a resource with all its descendants; a removed inline child re-tags its parent."""
        entry = self.entries.pop(resource_key, None)
        if entry is None:
            return None
        if entry.parent_key is None:
            descendants = self._nested.pop(entry.key, set())
        else:
            prefix = entry.key + "/"
            descendants = {d for d in self._nested.get(entry.top_key, ()) if d.startswith(prefix)}
        self._unindex(entry)
        for d in descendants:
            gone = self.entries.pop(d, None)
            if gone is not None:
                self._unindex(gone)
        if touch_parent:
            self._touch_parent(entry)
        return entry

    def ids(self, type_: str | None = None) -> list[str]:
        wanted = type_.lower() if type_ else None
        return [e.id for e in self.entries.values() if wanted is None or e.type_key == wanted]

    # ---- internals -----------------------------------------------------------------------------

    def _read_only_fields(self, path: ArmPath, type_key: str, props: dict[str, Any], existing: Entry | None,
                          mode: Mode) -> None:
        """Keep what ARM owns (resourceGuid, NSG default rules) whatever the client sent back."""
        old = existing.body["properties"] if existing is not None else {}
        if mode == "put" and type_key.startswith("microsoft.network/") and len(path.types) == 1:
            props["resourceGuid"] = old.get("resourceGuid") or props.get("resourceGuid") or str(uuid.uuid4())
        if type_key != arm.NSG_TYPE:
            return
        given = props.pop("defaultSecurityRules", None)
        if mode != "put" and isinstance(given, list) and given:
            props["defaultSecurityRules"] = [{k: v for k, v in r.items() if k != "etag"}
                                             for r in given if isinstance(r, dict)]
        elif old.get("defaultSecurityRules"):
            props["defaultSecurityRules"] = old["defaultSecurityRules"]
        # else: Azure's six defaults, generated when composed rather than stored 100k times

    def _plan_children(self, parent: ArmPath, spec: arm.InlineChildren, inline: Any,
                       mode: Mode) -> list[tuple[ArmPath, dict[str, Any]]] | None:
        """Validate an inline child list before anything is written; None: leave children alone."""
        if mode == "load" and not isinstance(inline, list):
            return None
        if inline is not None and not isinstance(inline, list):
            raise StoreError(400, "InvalidRequestFormat", f"properties.{spec.prop} must be a list")
        planned: list[tuple[ArmPath, dict[str, Any]]] = []
        for item in inline or []:
            if not isinstance(item, dict):
                raise StoreError(400, "InvalidRequestFormat", f"properties.{spec.prop} items must be objects")
            name = item.get("name")
            if not name and isinstance(item.get("id"), str):
                name = item["id"].rstrip("/").rsplit("/", 1)[-1]
            if not isinstance(name, str) or not name or "/" in name:
                raise StoreError(400, "InvalidRequestFormat", f"properties.{spec.prop} items need a name")
            planned.append((parent.child(spec.segment, name), item))
        return planned

    def _write_children(self, parent: Entry, spec: arm.InlineChildren,
                        children: list[tuple[ArmPath, dict[str, Any]]], mode: Mode) -> None:
        """Load merges children; PUT and set replace the whole set (ARM treats the list as the truth)."""
        wanted: list[str] = []
        for child, item in children:
            wanted.append(child.key)
            if mode == "load" and child.key in self._standalone:
                continue
            old = self.entries.get(child.key)
            if old is not None and mode == "put" and _props_without_state(old.body) == _props_without_state(item):
                continue  # unchanged: ARM keeps the child's etag
            self.write(child, item, mode=mode, touch_parent=False)
        slot = (parent.key, spec.segment.lower())
        keep = set(wanted)
        if mode == "load":  # inline order first (a standalone child takes its inline copy's place)
            kids = self._kids.get(slot, {})
            self._kids[slot] = dict.fromkeys([*wanted, *(k for k in kids if k not in keep)])
            return
        for k in [k for k in self._kids.get(slot, {}) if k not in keep]:
            self.delete(k, touch_parent=False)
        self._kids[slot] = {k: None for k in wanted if k in self.entries}

    def _touch_parent(self, child: Entry) -> None:
        if child.parent_key is None:
            return
        parent = self.entries.get(child.parent_key)
        if parent is not None and arm.is_inline_child(parent.type_key, child.path.types[-1]):
            parent.etag = new_etag()

    def _list_keys(self, e: Entry) -> list[tuple[str, str, str | None]]:
        sub = e.path.subscription.lower()
        out: list[tuple[str, str, str | None]] = [(e.type_key, sub, None)]
        if e.path.resource_group is not None:
            out.append((e.type_key, sub, e.path.resource_group.lower()))
        return out

    def _index(self, e: Entry) -> None:
        self.entries[e.key] = e
        if e.parent_key is None:
            for lk in self._list_keys(e):
                self._lists.setdefault(lk, SortedKeys()).add(e.key, bulk=self._bulk)
        else:
            self._kids.setdefault(e.slot, {})[e.key] = None
            self._nested.setdefault(e.top_key, set()).add(e.key)

    def _update_refs(self, source: Entry) -> None:
        """Keep back-references (an NSG's ``properties.subnets``, a policy's ``firewalls``) true as
        resources attach and detach."""
        self._drop_refs(source.key)
        props = source.body.get("properties") or {}
        targets = []
        for path, prop in arm.BACKREFS[source.type_key]:
            for rid in arm.referenced_ids(props, path):
                targets.append((key(rid), prop))
        owner_id = source.id
        for _ in range(arm.BACKREF_OWNER_LEVELS.get(source.type_key, 0)):
            owner_id = owner_id.rsplit("/", 2)[0]
        for t, prop in targets:
            self._backrefs.setdefault(t, {}).setdefault(prop, {})[source.key] = owner_id
        self._refs_of[source.key] = tuple(targets)

    def _drop_refs(self, source_key: str) -> None:
        for t, prop in self._refs_of.pop(source_key, ()):
            refs = self._backrefs.get(t, {}).get(prop)
            if refs is not None:
                refs.pop(source_key, None)

    def _unindex(self, e: Entry) -> None:
        if e.type_key in arm.BACKREFS:
            self._drop_refs(e.key)
        if e.parent_key is None:
            for lk in self._list_keys(e):
                sk = self._lists.get(lk)
                if sk is not None:
                    sk.discard(e.key)
        else:
            kids = self._kids.get(e.slot)
            if kids is not None:
                kids.pop(e.key, None)
            nested = self._nested.get(e.top_key)
            if nested is not None:
                nested.discard(e.key)


def _version_order(version: str) -> tuple[int, int, str]:
    """Numeric versions by number, others after them by text (how ML orders versions)."""
    return (0, int(version), "") if version.isdigit() else (1, 0, version)
