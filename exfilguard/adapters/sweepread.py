"""Reading a whole subscription, for the CLI's live scan and the Function app's sweep alike.

What is read comes from the descriptors (:mod:`exfilguard.core.types`): every type listed
across the subscription, in their order, then every type listed under each of its parents
(computes and environment containers under workspaces, versions under containers, rule
collection groups under firewall policies). Only lists are asked for, never one resource at a
time, except environment versions in ``latest`` mode. Each list's JSON is kept as ARM sent it.

Two ways to read environment versions:

- ``"all"`` (the CLI): every version of every container.
- ``"latest"`` (the sweep): only what EXF-ENV-01 needs, the latest version of each container
  (the container list names it), and only when it was never read before: versions never change
  once written, so checked versions come from storage
  (:class:`~exfilguard.adapters.sweeplease.CheckedVersions`). New versions are read in chunks,
  each recorded in storage as it completes, and no chunk starts past the deadline: a sweep cut
  short is resumed by the next run, which reads only what is left.

With ``workers`` above one, the lists under parents are read concurrently (the instance's ARM
budget paces every request, so concurrency only hides latency, never exceeds quota).
``progress(step, resources_so_far)`` is called as resources arrive. With ``on_error``, a list
that fails (say a 403 on storage accounts) is reported there and the read goes on with what
was read, so one missing permission does not hide every other finding; without it the first
error is raised.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from exfilguard.adapters.arm import ArmClient, ArmError
from exfilguard.adapters.budget import Deadline
from exfilguard.core import ids, types

CHUNK = 400


@dataclass
class SweepRead:
    bodies: list[dict] = field(default_factory=list)
    complete: bool = True  # False: the deadline came before every version was read
    versions_total: int = 0  # latest versions the containers name
    versions_known: int = 0  # of which taken from storage
    versions_read: int = 0  # read from ARM in this run
    versions_left: int = 0  # not read because of the deadline


Listed = tuple[dict, list[dict], ArmError | None]  # (parent, what was listed under it, the error that ended it)


def _drain(items: Iterator[dict]) -> tuple[list[dict], ArmError | None]:
    """Every item of a list until it ends or fails; what came before a failure is kept."""
    got: list[dict] = []
    try:
        got.extend(items)
    except ArmError as exc:
        return got, exc
    return got, None


def _latest_version_id(container: dict) -> str | None:
    cid = container.get("id")
    props = container.get("properties")
    latest = props.get("latestVersion") if isinstance(props, dict) else None
    if isinstance(cid, str) and isinstance(latest, str | int) and str(latest).strip():
        return f"{cid.rstrip('/')}/versions/{str(latest).strip()}"
    return None


def _label(parent: dict, t: types.ResourceType) -> str:
    name = parent.get("name") or str(parent["id"]).rsplit("/", 1)[-1]
    return f"{name}/{t.segment}"


class _Reader:
    def __init__(self, client: ArmClient, mapper: Callable[..., Iterable[Any]],
                 progress: Callable[[str, int], None] | None, on_error: Callable[[ArmError], None] | None) -> None:
        self.client = client
        self.map = mapper
        self.progress = progress
        self.on_error = on_error
        self.out = SweepRead()

    def failed(self, exc: ArmError | None) -> None:
        if exc is None:
            return
        if self.on_error is None:
            raise exc
        self.on_error(exc)

    def keep(self, step: str, items: list[dict]) -> None:
        for item in items:
            self.out.bodies.append(item)
            if self.progress is not None:
                self.progress(step, len(self.out.bodies))

    def top_level(self, t: types.ResourceType) -> list[dict]:
        got, exc = _drain(self.client.list_type(t.arm_type))
        self.keep(t.segment, got)
        self.failed(exc)
        return got

    def under(self, t: types.ResourceType, parents: list[dict]) -> list[Listed]:
        """Every ``t`` under each parent; kept when ``t`` has a view (containers are only walked)."""
        def one(parent: dict) -> Listed:
            return parent, *_drain(self.client.list_children(parent["id"], t.segment))

        listed = list(self.map(one, [p for p in parents if isinstance(p.get("id"), str)]))
        for parent, got, exc in listed:
            if t.parser is not None:
                self.keep(_label(parent, t), got)
            self.failed(exc)
        return listed

    def latest_versions(self, containers: list[Listed], checked: Any, deadline: Deadline | None) -> None:
        """The latest version of each container, unless storage has it; in chunks, to the deadline."""
        out = self.out
        known = checked.load() if checked is not None else {}
        todo: list[tuple[str, str | None, dict]] = []  # (workspace ID, version ID or None: list them, container)
        for ws, listed, _ in containers:
            for c in listed:
                vid = _latest_version_id(c)
                out.versions_total += 1
                if vid is not None and ids.key(vid) in known:
                    out.bodies.append(known[ids.key(vid)])
                    out.versions_known += 1
                elif isinstance(c.get("id"), str):
                    todo.append((ws["id"], vid, c))
        for start in range(0, len(todo), CHUNK):
            if deadline is not None and deadline.expired():
                out.complete = False
                out.versions_left = len(todo) - start
                return
            self._chunk(todo[start:start + CHUNK], checked)

    def _fetch(self, item: tuple[str, str | None, dict]) -> tuple[str, list[dict], ArmError | None]:
        ws_id, vid, container = item
        try:
            if vid is None:  # an API without latestVersion: list the versions
                return ws_id, list(self.client.list_children(container["id"], "versions")), None
            body = self.client.get(vid)
            return ws_id, [body] if body is not None else [], None
        except ArmError as exc:
            return ws_id, [], exc

    def _chunk(self, chunk: list[tuple[str, str | None, dict]], checked: Any) -> None:
        by_ws: dict[str, list[dict]] = {}
        for ws_id, bodies, exc in self.map(self._fetch, chunk):
            if exc is not None:
                self.failed(exc)
                continue
            self.keep(types.ENV_VERSION.segment, bodies)
            self.out.versions_read += len(bodies)
            by_ws.setdefault(ws_id, []).extend(b for b in bodies if isinstance(b.get("id"), str))
        if checked is not None:
            for ws_id, bodies in by_ws.items():
                checked.record(ws_id, bodies)  # the checkpoint: the next run skips these


def read(client: ArmClient, checked: Any = None, *, versions: Literal["all", "latest"] = "all",
         deadline: Deadline | None = None, environments: bool = True, workers: int = 1,
         progress: Callable[[str, int], None] | None = None,
         on_error: Callable[[ArmError], None] | None = None) -> SweepRead:
    """Every resource of the subscription the baseline reads (see the module's docstring)."""
    skipped = () if environments else (types.ENVIRONMENT.key, types.ENV_VERSION.key)
    listed: dict[str, list[Listed]] = {}
    with ThreadPoolExecutor(max_workers=workers) if workers > 1 else contextlib.nullcontext() as pool:
        reader = _Reader(client, pool.map if pool is not None else map, progress, on_error)
        for t in types.SWEPT:
            listed[t.key] = [({}, reader.top_level(t), None)]
        if pool is not None:
            client.pipeline  # noqa: B018 - build the shared pipeline once, before threads use it
        for t in types.TYPES:
            if t.listing != "parent" or t.key in skipped or t.parent_key is None:
                continue
            parents = [p for _, got, _ in listed.get(t.parent_key, []) for p in got]
            if t is types.ENV_VERSION and versions == "latest":
                reader.latest_versions(listed.get(t.parent_key, []), checked, deadline)
            else:
                listed[t.key] = reader.under(t, parents)
    return reader.out
