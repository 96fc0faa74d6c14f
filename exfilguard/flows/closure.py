"""Reading just enough of the subscription to evaluate around one changed resource.

An event names one resource; the rules about it need some neighbours. A security rule write
needs its NSG, the guarded subnets the NSG is attached to (for their regions) and one compute
on each (that is what makes a subnet guarded); a subnet write needs its VNet, its NSG and
policies and, for those, *their* other subnets. This module knows those shapes and reads
each resource at most once per invocation. The set of resources whose findings the event
may have changed is collected as ``affected`` and given to ``engine.evaluate(only=...)``.

Which computes sit on which subnet comes from the compute index in Table storage
(:mod:`exfilguard.adapters.state`), not from listing every workspace's computes: with the index, a
security rule write costs three reads (NSG, VNet, one compute). ARM's NSG and policy bodies
list their subnets (``properties.subnets``); when that back-reference is missing the index's
record of which NSG and policies each guarded subnet had is used instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from exfilguard.adapters.state import IndexedCompute, State
from exfilguard.adapters.telemetry import get_logger
from exfilguard.core import ids, model, types
from exfilguard.core.config import Config
from exfilguard.flows import egress_closure

log = get_logger("exfilguard.closure")


@dataclass(slots=True)
class ClosureRead:
    """What was read: raw bodies by ID key, the IDs to report findings for, and what was not there."""

    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    affected: dict[str, str] = field(default_factory=dict)  # key -> ID as written
    gone: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def body_list(self) -> list[dict[str, Any]]:
        return list(self.bodies.values())


def _props(body: dict[str, Any] | None) -> dict[str, Any]:
    props = body.get("properties") if isinstance(body, dict) else None
    return props if isinstance(props, dict) else {}


def _ml_subnet(body: Any) -> str | None:
    """The subnet an ML compute body sits on; None for an attached compute (Kubernetes, a VM,
    Databricks...), which guards no subnet (baseline "Scope"), or one without a subnet."""
    props = _props(body)
    if not model.is_ml_compute_type(props.get("computeType")):
        return None
    subnet = ((props.get("properties") or {}).get("subnet") or {}).get("id")
    return subnet.strip() if isinstance(subnet, str) and subnet.strip() else None


def _hub_of(body: Any) -> str | None:
    """The hub of an AI Foundry hub-based project body (``kind: Project``, ``hubResourceId``)."""
    if not isinstance(body, dict) or str(body.get("kind") or "").lower() != "project":
        return None
    hub = _props(body).get("hubResourceId")
    return hub.strip() if isinstance(hub, str) and ids.try_parse(hub.strip()) is not None else None


def _ref_ids(items: Any) -> list[str]:
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"].strip():
            out.append(item["id"].strip())
    return out


class ClosureReader:
    """One invocation's reads. ``client`` is an :class:`~exfilguard.adapters.arm.ArmClient`."""

    def __init__(self, client: Any, state: State, config: Config) -> None:
        self.client = client
        self.state = state
        self.config = config
        self.read = ClosureRead({}, {}, [], [])  # bodies, affected, gone, notes
        self._fetched: set[str] = set()
        self._index_ready = False
        self._subnet_computes: dict[str, list[IndexedCompute]] = {}
        self._done: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ entry points
    def around(self, resource_type: str, resource_id: str, *, deleted: bool = False) -> ClosureRead:
        """Read the closure of one resource of a type the baseline evaluates (lowercase key)."""
        t = types.get(resource_type)
        if t is not None and t.around_parent and t.parent_key is not None:
            parent = ids.parse(resource_id).parent
            assert parent is not None
            return self.around(t.parent_key, str(parent))
        shape = AROUND.get(t.key) if t is not None else None
        if shape is None:
            raise ValueError(f"type {resource_type} is not evaluated by ExfilGuard")
        shape(self, resource_id, deleted)
        return self.read

    # ------------------------------------------------------------------ reads
    def get(self, resource_id: str) -> dict[str, Any] | None:
        k = ids.key(resource_id)
        if k in self._fetched:
            return self.read.bodies.get(k)
        self._fetched.add(k)
        body = self.client.get(resource_id)
        if body is None:
            self.read.gone.append(resource_id)
            return None
        if not isinstance(body, dict):
            raise TypeError(f"{resource_id}: ARM answered {type(body).__name__}, not a JSON object")
        self.read.bodies[k] = body
        return body

    def existing(self, resource_id: str, what: str) -> dict[str, Any] | None:
        """The body, or None with a note that the resource (a ``what``) is gone: the event may
        report a deletion, and what is gone is never evaluated nor counted compliant."""
        body = self.get(resource_id)
        if body is None:
            self.read.notes.append(f"{what} {resource_id} no longer exists")
        return body

    def _affect(self, resource_id: str) -> None:
        self.read.affected.setdefault(ids.key(resource_id), resource_id)

    def _once(self, kind: str, resource_id: str) -> bool:
        marker = (kind, ids.key(resource_id))
        if marker in self._done:
            return False
        self._done.add(marker)
        return True

    # ------------------------------------------------------------------ the compute index
    def _ensure_index(self) -> None:
        if self._index_ready:
            return
        self._index_ready = True
        if self.state.index_populated():
            return
        # First run: no sweep has filled the index yet. List the computes once and keep them.
        workspaces = list(self.client.list_type("Microsoft.MachineLearningServices/workspaces"))
        n = 0
        for ws in workspaces:
            ws_id = ws.get("id")
            if not isinstance(ws_id, str):
                continue
            for c in self.client.list_children(ws_id, "computes"):
                cid = c.get("id")
                if not isinstance(cid, str):
                    continue
                self.state.index_compute(cid, ws_id, _ml_subnet(c))
                n += 1
        self.state.mark_index_populated()
        note = f"compute index was empty: listed {n} computes of {len(workspaces)} workspaces and indexed them"
        self.read.notes.append(note)
        log.info(note)

    def _computes_on(self, subnet_ids: Iterable[str]) -> dict[str, list[IndexedCompute]]:
        known = self._subnet_computes
        keyed = [(s, ids.key(s)) for s in subnet_ids]
        wanted = [s for s, k in keyed if k not in known]
        if wanted:
            self._ensure_index()
            known.update(self.state.computes_on(wanted))
        return {k: known.get(k, []) for _, k in keyed}

    def _configured(self, subnet_id: str) -> bool:
        if not self.config.guarded_subnets:
            return False
        k = ids.key(subnet_id)
        return any(ids.key(g) == k for g in self.config.guarded_subnets)

    def _guard(self, subnet_id: str, computes: list[IndexedCompute], *, per_workspace: bool) -> bool:
        """Put computes of the subnet in the picture: one (enough to make it guarded), or one per
        workspace (policy rules need every workspace's storage account). Stale index rows
        (the compute is gone or moved) are dropped. True when the subnet is guarded."""
        found = False
        seen_ws: set[str] = set()
        for c in computes:
            ws = ids.key(c.workspace_id)
            if found and (not per_workspace or ws in seen_ws):
                continue
            body = self.get(c.compute_id)
            if body is None:
                self.state.forget_compute(c.compute_id)
                continue
            subnet = _ml_subnet(body)
            if subnet is None or ids.key(subnet) != ids.key(subnet_id):
                self.state.index_compute(c.compute_id, c.workspace_id, subnet)
                continue
            found = True
            seen_ws.add(ws)
            if per_workspace:
                self._workspace_and_hub(c.workspace_id)  # its default storage account matters to EXF-SEP-02
        return found or self._configured(subnet_id)

    def _workspace_and_hub(self, workspace_id: str) -> dict[str, Any] | None:
        """A workspace and, for a hub-based project, its hub: the project's default storage and
        managed network are the hub's when it names none."""
        body = self.get(workspace_id)
        hub = _hub_of(body)
        if hub is not None:
            self.get(hub)
        return body

    # ------------------------------------------------------------------ shapes
    def _attached_subnets(self, owner_id: str, body: dict[str, Any]) -> list[str]:
        props = _props(body)
        if "subnets" in props:
            return _ref_ids(props.get("subnets"))
        # No back-reference in the body: use the index's record of guarded subnets' attachments.
        return [s.subnet_id for s in self.state.subnets_attached_to(owner_id)]

    def nsg(self, nsg_id: str) -> None:
        """The NSG and, for its rules' regions, its guarded subnets (VNet + one compute each)."""
        if not self._once("nsg", nsg_id):
            return
        body = self.existing(nsg_id, "NSG")
        if body is None:
            return
        self._affect(body.get("id") or nsg_id)
        subnet_ids = self._attached_subnets(nsg_id, body)
        computes = self._computes_on(subnet_ids)
        for sid in subnet_ids:
            on_subnet = computes.get(ids.key(sid))
            if not (on_subnet or self._configured(sid)):
                continue  # not guarded: its region does not matter to this NSG's rules
            parsed = ids.try_parse(sid)
            vnet_body = self.get(str(parsed.parent)) if parsed is not None and parsed.parent is not None else None
            if vnet_body is None:
                continue
            if self._guard(sid, on_subnet or [], per_workspace=False):
                # The NSG's verdict depends on where the subnet's internet traffic goes.
                for s in _props(vnet_body).get("subnets") or []:
                    if isinstance(s, dict) and ids.key(str(s.get("id", ""))) == ids.key(sid):
                        egress_closure.subnet_route(self, _props(s), whole=False)

    def sep(self, sep_id: str) -> None:
        """The policy, its guarded subnets and every workspace with a compute on them."""
        if not self._once("sep", sep_id):
            return
        body = self.existing(sep_id, "service endpoint policy")
        if body is None:
            return
        self._affect(body.get("id") or sep_id)
        subnet_ids = self._attached_subnets(sep_id, body)
        computes = self._computes_on(subnet_ids)
        for sid in subnet_ids:
            if not (computes.get(ids.key(sid)) or self._configured(sid)):
                continue
            parsed = ids.try_parse(sid)
            if parsed is None or parsed.parent is None or self.get(str(parsed.parent)) is None:
                continue
            self._guard(sid, computes.get(ids.key(sid), []), per_workspace=True)

    def vnet(self, vnet_id: str, only_subnet: str | None = None) -> None:
        """The VNet's guarded subnets (or one of them), with their NSGs and policies."""
        body = self.existing(vnet_id, "virtual network")
        if body is None:
            return
        subnets = [s for s in _props(body).get("subnets") or [] if isinstance(s, dict)]
        if only_subnet is not None:
            subnets = [s for s in subnets if ids.key(str(s.get("id", ""))) == ids.key(only_subnet)]
            if not subnets:
                self.read.gone.append(only_subnet)
                self.read.notes.append(f"subnet {only_subnet} is no longer in its virtual network")
                return
        subnet_ids = [str(s["id"]) for s in subnets if isinstance(s.get("id"), str)]
        computes = self._computes_on(subnet_ids)
        for s in subnets:
            sid = s.get("id")
            if not isinstance(sid, str):
                continue
            props = _props(s)
            nsg = ((props.get("networkSecurityGroup") or {}).get("id"))
            seps = _ref_ids(props.get("serviceEndpointPolicies"))
            # Every workspace on the subnet matters only to its policies (their storage accounts).
            if not self._guard(sid, computes.get(ids.key(sid), []), per_workspace=bool(seps)):
                continue
            self._affect(sid)
            self.state.note_subnet(sid, nsg if isinstance(nsg, str) else None, seps)
            egress_closure.subnet_route(self, props, whole=True)
            if isinstance(nsg, str) and nsg.strip():
                self.nsg(nsg.strip())
            for sep in seps:
                self.sep(sep)

    def subnet(self, subnet_id: str, deleted: bool = False) -> None:
        parent = ids.parse(subnet_id).parent
        assert parent is not None
        if deleted:
            self.read.gone.append(subnet_id)
            self.read.notes.append(f"subnet {subnet_id} was deleted; nothing left to evaluate")
            return
        self.vnet(str(parent), only_subnet=subnet_id)

    def compute(self, compute_id: str, deleted: bool = False) -> None:
        """A compute (and, when it sits in a subnet, that subnet's closure); keeps the index current."""
        workspace_id = str(ids.parse(compute_id).parent)
        if deleted:
            self.state.forget_compute(compute_id)
            self.read.gone.append(compute_id)
            self.read.notes.append(f"compute {compute_id} was deleted; removed from the compute index")
            return
        body = self.get(compute_id)
        if body is None:
            self.state.forget_compute(compute_id)
            self.read.notes.append(f"compute {compute_id} no longer exists; removed from the compute index")
            return
        subnet_id = _ml_subnet(body)  # an attached compute guards no subnet: indexed without one
        self.state.index_compute(body.get("id") or compute_id, workspace_id, subnet_id)
        self._subnet_computes.clear()  # the index just changed
        self._affect(body.get("id") or compute_id)
        self._workspace_and_hub(workspace_id)  # EXF-CMP-01 depends on the workspace's managed network
        if subnet_id and ids.try_parse(subnet_id) is not None and ids.parse(subnet_id).parent is not None:
            self.subnet(subnet_id)

    def workspace(self, workspace_id: str, deleted: bool = False) -> None:
        """The workspace, its default storage account, and its computes without a subnet
        (whether they are covered depends on the workspace's managed network)."""
        if deleted:
            for c in self.state.computes():
                if ids.key(c.workspace_id) == ids.key(workspace_id):
                    self.state.forget_compute(c.compute_id)
            self.read.gone.append(workspace_id)
            self.read.notes.append(f"workspace {workspace_id} was deleted; its computes left the compute index")
            return
        body = self._workspace_and_hub(workspace_id)
        if body is None:
            self.read.notes.append(f"workspace {workspace_id} no longer exists")
            return
        self._affect(body.get("id") or workspace_id)
        storage = _props(body).get("storageAccount")
        hub = _hub_of(body)
        if not storage and hub is not None:  # a hub-based project naming none uses its hub's
            storage = _props(self.get(hub)).get("storageAccount")
        if isinstance(storage, str) and ids.try_parse(storage) is not None and self.get(storage) is not None:
            self._affect(storage)
        self._computes_without_subnet(workspace_id)
        if str(body.get("kind") or "").lower() == "hub":
            # Its projects' computes without a subnet run in the hub's managed network (EXF-CMP-01).
            for ws in self.client.list_type("Microsoft.MachineLearningServices/workspaces"):
                pid = ws.get("id") if isinstance(ws, dict) else None
                if isinstance(pid, str) and ids.key(_hub_of(ws) or "-") == ids.key(workspace_id):
                    self.read.bodies.setdefault(ids.key(pid), ws)
                    self._fetched.add(ids.key(pid))
                    self._computes_without_subnet(pid)

    def _computes_without_subnet(self, workspace_id: str) -> None:
        """The workspace's ML computes with no subnet: whether they are covered depends on the
        managed network (EXF-CMP-01). Attached computes are not evaluated."""
        for c in self.client.list_children(workspace_id, "computes"):
            cid = c.get("id")
            if not isinstance(cid, str) or not model.is_ml_compute_type(_props(c).get("computeType")):
                continue
            subnet = ((_props(c).get("properties") or {}).get("subnet") or {}).get("id")
            if not subnet:
                self.read.bodies.setdefault(ids.key(cid), c)
                self._fetched.add(ids.key(cid))
                self._affect(cid)

    def env_version(self, env_id: str) -> None:
        if self.get(env_id) is not None:
            self._affect(env_id)

    def storage(self, storage_id: str) -> None:
        """A storage account matters as a workspace's default storage (EXF-WS-03)."""
        body = self.get(storage_id)
        if body is None:
            return
        users = [ws for ws in self.client.list_type("Microsoft.MachineLearningServices/workspaces")
                 if isinstance(ws.get("id"), str)
                 and ids.key(str(_props(ws).get("storageAccount") or "-")) == ids.key(storage_id)]
        for ws in users:
            self.read.bodies.setdefault(ids.key(ws["id"]), ws)
            self._fetched.add(ids.key(ws["id"]))
        if users:
            self._affect(body.get("id") or storage_id)
        else:
            self.read.notes.append(f"storage account {storage_id} is no workspace's default storage; not evaluated")


Around = Callable[[ClosureReader, str, bool], None]
"""Read around one resource of a type: ``(reader, resource ID, deleted)``."""


def _plain(read: Callable[[ClosureReader, str], None]) -> Around:
    """A type whose deletion leaves nothing to evaluate and nothing to clean up."""
    def around(reader: ClosureReader, resource_id: str, deleted: bool) -> None:
        if deleted:
            reader.read.gone.append(resource_id)
            reader.read.notes.append(f"{resource_id} was deleted; nothing left to evaluate")
        else:
            read(reader, resource_id)
    return around


# The closure per descriptor (types.py) of a type an event evaluates around itself. It is kept
# here, not on the descriptor, because it does I/O and the core imports nothing above it
# (tests/core/test_types.py checks every such type has one). Computes, workspaces and subnets
# leave traces to clean up when deleted (index rows); the others have nothing left to evaluate.
AROUND: Mapping[str, Around] = MappingProxyType({
    types.NSG.key: _plain(ClosureReader.nsg),
    types.VNET.key: _plain(ClosureReader.vnet),
    types.SUBNET.key: ClosureReader.subnet,
    types.SEP.key: _plain(ClosureReader.sep),
    types.STORAGE.key: _plain(ClosureReader.storage),
    types.WORKSPACE.key: ClosureReader.workspace,
    types.COMPUTE.key: ClosureReader.compute,
    types.ENV_VERSION.key: _plain(ClosureReader.env_version),
    types.ROUTE_TABLE.key: _plain(egress_closure.route_table),
    types.FIREWALL.key: _plain(egress_closure.firewall),
    types.FW_POLICY.key: _plain(egress_closure.policy),
    types.IP_GROUP.key: _plain(egress_closure.ip_group),
})
