"""Reading the subscription for a sweep: concurrent, inside the ARM budget, within a deadline.

Differences from :meth:`ArmClient.read_subscription` (which the CLI's live scan still uses):

- Workspaces' computes and environment containers are listed concurrently (the instance's
  ARM budget paces every request, so concurrency only hides latency, never exceeds quota).
- Only what EXF-ENV-01 needs: the latest version of each environment container (the
  container list names it), and only when it was never read before: versions never change
  once written, so checked versions come from storage
  (:class:`~exfilguard.adapters.sweeplease.CheckedVersions`). With ``EXFILGUARD_SWEEP_ENVIRONMENTS``
  off, no environment is read at all.
- New versions are read in chunks, each recorded in storage as it completes, and no chunk
  starts past the deadline: a sweep cut short is resumed by the next run, which reads only
  what is left.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from exfilguard.adapters.arm import SWEEP_TYPES, ArmClient, ArmError
from exfilguard.adapters.budget import Deadline
from exfilguard.core import ids
from exfilguard.core.model import FW_POLICY, WORKSPACE

CHUNK = 400


@dataclass
class SweepRead:
    bodies: list[dict] = field(default_factory=list)
    complete: bool = True  # False: the deadline came before every version was read
    versions_total: int = 0  # latest versions the containers name
    versions_known: int = 0  # of which taken from storage
    versions_read: int = 0  # read from ARM in this run
    versions_left: int = 0  # not read because of the deadline


def _latest_version_id(container: dict) -> str | None:
    cid = container.get("id")
    props = container.get("properties") if isinstance(container.get("properties"), dict) else {}
    latest = props.get("latestVersion")
    if isinstance(cid, str) and isinstance(latest, str | int) and str(latest).strip():
        return f"{cid.rstrip('/')}/versions/{str(latest).strip()}"
    return None


def read(client: ArmClient, checked: Any, *, deadline: Deadline, environments: bool = True, workers: int = 8,
         progress: Callable[[str, int], None] | None = None,
         on_error: Callable[[ArmError], None] | None = None) -> SweepRead:
    out = SweepRead()

    def report(step: str) -> None:
        if progress is not None:
            progress(step, len(out.bodies))

    def failed(exc: ArmError) -> None:
        if on_error is None:
            raise exc
        on_error(exc)

    workspaces: list[dict] = []
    for resource_type in SWEEP_TYPES:
        try:
            got = list(client.list_type(resource_type))
        except ArmError as exc:
            failed(exc)
            continue
        out.bodies += got
        report(resource_type.rsplit("/", 1)[-1])
        if ids.type_key(resource_type) == WORKSPACE:
            workspaces = [w for w in got if isinstance(w.get("id"), str)]
        elif ids.type_key(resource_type) == FW_POLICY:  # a policy names its rule collection groups only
            for policy in got:
                if isinstance(policy.get("id"), str):
                    try:
                        out.bodies += list(client.list_children(policy["id"], "ruleCollectionGroups"))
                    except ArmError as exc:
                        failed(exc)
            report("ruleCollectionGroups")

    client.pipeline  # noqa: B018 - build the shared pipeline once, before threads use it

    def children(ws: dict) -> tuple[dict, list[dict], list[dict], list[ArmError]]:
        errors: list[ArmError] = []
        computes: list[dict] = []
        containers: list[dict] = []
        try:
            computes = list(client.list_children(ws["id"], "computes"))
        except ArmError as exc:
            errors.append(exc)
        if environments:
            try:
                containers = list(client.list_children(ws["id"], "environments"))
            except ArmError as exc:
                errors.append(exc)
        return ws, computes, containers, errors

    known = checked.load() if environments and checked is not None else {}
    todo: list[tuple[str, str | None, dict]] = []  # (workspace ID, version ID or None: list them, container)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for ws, computes, containers, errors in pool.map(children, workspaces):
            for exc in errors:
                failed(exc)
            out.bodies += computes
            for c in containers:
                vid = _latest_version_id(c)
                out.versions_total += 1
                if vid is not None and ids.key(vid) in known:
                    out.bodies.append(known[ids.key(vid)])
                    out.versions_known += 1
                elif isinstance(c.get("id"), str):
                    todo.append((ws["id"], vid, c))
        report("computes and environments")

        def fetch(item: tuple[str, str | None, dict]) -> tuple[str, list[dict], ArmError | None]:
            ws_id, vid, container = item
            try:
                if vid is None:  # an API without latestVersion: list the versions
                    return ws_id, list(client.list_children(container["id"], "versions")), None
                body = client.get(vid)
                return ws_id, [body] if body is not None else [], None
            except ArmError as exc:
                return ws_id, [], exc

        for start in range(0, len(todo), CHUNK):
            if deadline.expired():
                out.complete = False
                out.versions_left = len(todo) - start
                break
            by_ws: dict[str, list[dict]] = {}
            for ws_id, bodies, exc in pool.map(fetch, todo[start:start + CHUNK]):
                if exc is not None:
                    failed(exc)
                    continue
                out.bodies += bodies
                out.versions_read += len(bodies)
                by_ws.setdefault(ws_id, []).extend(b for b in bodies if isinstance(b.get("id"), str))
            if checked is not None:
                for ws_id, bodies in by_ws.items():
                    checked.record(ws_id, bodies)  # the checkpoint: the next run skips these
            report("environment versions")
    return out
