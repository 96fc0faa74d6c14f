"""Each workspace's network path as plain data, for drawing: who talks through what.

The baseline's findings are about chains (compute -> subnet -> NSG / service endpoint policy /
route table -> firewall -> default storage account -> workspace). This module follows those
chains once through the picture and returns them as nodes in columns and edges between them,
so the renderer never needs the picture (a report stored by a sweep can be drawn from this
alone) and the layout code never needs to know ARM.

Route tables and firewalls are read from the raw bodies of the scan: a subnet's
``properties.routeTable.id`` names its route table, and a route whose next hop is a virtual
appliance at a firewall's private IP names the firewall. When those resources are not in the
scan, there is simply no such column.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from exfilguard.core import ids
from exfilguard.core.picture import Picture

# Columns, left to right.
COMPUTE, SUBNET, CONTROL, FIREWALL, STORAGE, WORKSPACE = range(6)
COLUMN_TITLES = ("Computes", "Subnets", "NSG · policies · routes", "Firewall", "Storage", "Workspace")

ROUTE_TABLE = "microsoft.network/routetables"
FIREWALL_TYPE = "microsoft.network/azurefirewalls"
POLICY_TYPE = "microsoft.network/firewallpolicies"
# A cheap first test over every body.
_EGRESS_TYPE_LENGTHS = frozenset({len(ROUTE_TABLE), len(FIREWALL_TYPE), len(POLICY_TYPE)})


@dataclass(frozen=True, slots=True)
class Node:
    """One box of a drawing. ``key`` is the lowercase resource ID findings are matched on
    (or a made-up key for things that are not resources, such as "no virtual network")."""

    key: str
    resource_id: str
    kind: str  # compute | subnet | nsg | sep | routetable | firewall | appliance | storage | workspace | none
    label: str
    column: int
    note: str = ""  # a second line: compute type, address prefix, next hop
    missing: bool = False  # referenced but not in the scan


@dataclass(frozen=True, slots=True)
class WorkspacePath:
    key: str
    resource_id: str
    name: str
    resource_group: str
    location: str
    nodes: tuple[Node, ...]  # column by column, top to bottom
    edges: tuple[tuple[str, str], ...]  # (from key, to key)
    missing: bool = False  # computes name it, but the workspace itself is not in the scan
    computes: int = 0
    summarised: bool = False  # nothing on its path has a finding: not followed, nodes and edges empty


@dataclass(frozen=True, slots=True)
class NetworkPaths:
    workspaces: tuple[WorkspacePath, ...]


def _name(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1] or resource_id


def _group(resource_id: str) -> str:
    """The resource group an ID names, by string search (thousands per sweep; no validation)."""
    at = resource_id.lower().find("/resourcegroups/")
    if at < 0:
        return ""
    return resource_id[at + 16:].split("/", 1)[0]


def _obj(value: Any, name: str) -> dict:
    got = value.get(name) if isinstance(value, Mapping) else None
    return got if isinstance(got, dict) else {}


def _list(value: Any, name: str) -> list:
    got = value.get(name) if isinstance(value, Mapping) else None
    return got if isinstance(got, list) else []


def _text(value: Any, name: str) -> str:
    got = value.get(name) if isinstance(value, Mapping) else None
    return got if isinstance(got, str) else ""


@dataclass(frozen=True, slots=True)
class _Egress:
    """Route tables and firewalls of the scan, by key, as raw JSON."""

    route_tables: Mapping[str, Mapping[str, Any]]
    firewall_by_ip: Mapping[str, str]  # private IP -> firewall resource ID
    policy_of: Mapping[str, str]  # firewall or policy key -> its (base) policy's resource ID
    policies: frozenset[str]  # keys of the firewall policies in the scan

    def policy_chain(self, firewall_key: str) -> list[str]:
        """The firewall's policy, then its base policies (FW findings name a policy)."""
        out: list[str] = []
        at = self.policy_of.get(firewall_key)
        while at and ids.key(at) not in {ids.key(x) for x in out} and len(out) < 8:
            out.append(at)
            at = self.policy_of.get(ids.key(at))
        return out


def _egress(bodies: Iterable[object]) -> _Egress:
    route_tables: dict[str, Mapping[str, Any]] = {}
    by_ip: dict[str, str] = {}
    policy_of: dict[str, str] = {}
    policies: set[str] = set()
    wanted = (ROUTE_TABLE, FIREWALL_TYPE, POLICY_TYPE)
    for body in bodies:
        if not isinstance(body, dict):
            continue
        t = body.get("type")
        if type(t) is not str or len(t) not in _EGRESS_TYPE_LENGTHS or (t := t.lower()) not in wanted:
            continue
        rid = body.get("id")
        if type(rid) is not str:
            continue
        if t == ROUTE_TABLE:
            route_tables[ids.key(rid)] = body
        elif t == POLICY_TYPE:
            policies.add(ids.key(rid))
            base = _text(_obj(_obj(body, "properties"), "basePolicy"), "id")
            if base:
                policy_of[ids.key(rid)] = base
        elif t == FIREWALL_TYPE:
            _read_firewall(rid, _obj(body, "properties"), by_ip, policy_of)
    return _Egress(route_tables, by_ip, policy_of, frozenset(policies))


def _read_firewall(rid: str, props: Mapping[str, Any], by_ip: dict[str, str], policy_of: dict[str, str]) -> None:
    """The firewall's private IPs (the next hops routes name) and its policy."""
    hub = _text(_obj(props, "hubIPAddresses"), "privateIPAddress")  # a secured-hub firewall
    for ip in [*(_text(_obj(conf, "properties"), "privateIPAddress") for conf in _list(props, "ipConfigurations")),
               hub]:
        if ip:
            by_ip.setdefault(ip, rid)
    policy = _text(_obj(props, "firewallPolicy"), "id")
    if policy:
        policy_of[ids.key(rid)] = policy


def _route_table_id(subnet_raw: Mapping[str, Any]) -> str:
    """The subnet's route table, read from its JSON: ``properties.routeTable.id``."""
    return _text(_obj(_obj(subnet_raw, "properties"), "routeTable"), "id")


def _appliance_hops(route_table: Mapping[str, Any]) -> list[str]:
    """Next-hop IPs of the routes that send traffic to a virtual appliance (a firewall)."""
    out = []
    for route in _list(_obj(route_table, "properties"), "routes"):
        props = _obj(route, "properties")
        if _text(props, "nextHopType").lower() == "virtualappliance":
            ip = _text(props, "nextHopIpAddress")
            if ip and ip not in out:
                out.append(ip)
    return out


class _Drawing:
    """Nodes and edges of one workspace as they are found, deduplicated by key."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.order: dict[str, int] = {}  # first-seen rank, for a stable top-to-bottom order
        self.edges: dict[tuple[str, str], None] = {}

    def add(self, node: Node, rank: int) -> str:
        if node.key not in self.nodes:
            self.nodes[node.key] = node
            self.order[node.key] = rank
        return node.key

    def edge(self, a: str, b: str) -> None:
        self.edges[(a, b)] = None

    def result(self) -> tuple[tuple[Node, ...], tuple[tuple[str, str], ...]]:
        nodes = sorted(self.nodes.values(), key=lambda n: (n.column, self.order[n.key], n.label.lower()))
        return tuple(nodes), tuple(self.edges)


def network_paths(picture: Picture, bodies: Iterable[object] = (),
                  relevant: Collection[str] | None = None) -> NetworkPaths:
    """Every workspace of the picture (and every workspace its computes name) with its path.

    ``bodies`` are the scan's raw ARM bodies; only route tables and firewalls are read from
    them (the picture does not hold those types). ``relevant``: the resource keys that have
    findings. A workspace whose path touches none of them is only summarised (name, group,
    computes): a 100,000-resource subscription has thousands of clean workspaces whose
    drawings nobody needs, and following them would cost as much as the report itself."""
    egress = _egress(bodies)
    by_ws: dict[str, list] = {}
    for c in picture.computes.values():
        by_ws.setdefault(ids.key(c.workspace_id), []).append(c)
    keys = list(picture.workspaces)
    keys += sorted(k for k in by_ws if k not in picture.workspaces)
    relevant_ws = None
    if relevant is not None:
        relevant_ws = {w for w in map(_workspace_key, relevant) if w is not None}
    out = []
    for ws_key in keys:
        ws = picture.workspaces.get(ws_key)
        computes = by_ws.get(ws_key, [])
        ws_id = ws.id if ws is not None else computes[0].workspace_id
        if (relevant is not None and relevant_ws is not None and ws_key not in relevant_ws
                and not _touches(picture, egress, ws, computes, relevant)):
            out.append(WorkspacePath(ws_key, ws_id, _name(ws_id), _group(ws_id),
                                     (ws.location or "") if ws is not None else "", (), (), ws is None,
                                     len(computes), True))
            continue
        out.append(_workspace_path(picture, egress, ws_key, ws_id, ws, computes))
    out.sort(key=lambda p: (p.name.lower(), p.resource_group.lower(), p.key))
    return NetworkPaths(tuple(out))


_WS_SEGMENT = "/providers/microsoft.machinelearningservices/workspaces/"


def _workspace_key(key: str) -> str | None:
    """The workspace a resource key is or lies under (its computes, environments), if any."""
    at = key.find(_WS_SEGMENT)
    if at < 0:
        return None
    end = key.find("/", at + len(_WS_SEGMENT))
    return key if end < 0 else key[:end]


def _touches(picture: Picture, egress: _Egress, ws: Any, computes: list, relevant: Collection[str]) -> bool:
    """Whether anything on the workspace's path has a finding (what :func:`_workspace_path`
    would draw, without drawing it)."""
    if ws is not None and ws.storage_account_id and ids.key(ws.storage_account_id) in relevant:
        return True
    for c in computes:
        if not c.subnet_id:
            continue
        sk = ids.key(c.subnet_id)
        if sk in relevant:
            return True
        s = picture.subnets.get(sk)
        if s is None:
            continue
        if s.nsg_id and ids.key(s.nsg_id) in relevant:
            return True
        if any(ids.key(sep) in relevant for sep in s.sep_ids):
            return True
        rt_id = _route_table_id(s.raw)
        if rt_id:
            rt_key = ids.key(rt_id)
            if rt_key in relevant:
                return True
            rt = egress.route_tables.get(rt_key)
            for ip in _appliance_hops(rt) if rt is not None else ():
                fw = egress.firewall_by_ip.get(ip)
                if fw is not None and (ids.key(fw) in relevant
                                       or any(ids.key(p) in relevant for p in egress.policy_chain(ids.key(fw)))):
                    return True
    return False


def _workspace_path(picture: Picture, egress: _Egress, ws_key: str, ws_id: str, ws: Any,
                    computes: list) -> WorkspacePath:
    d = _Drawing()
    ws_node = d.add(Node(ws_key, ws_id, "workspace", _name(ws_id), WORKSPACE,
                         (ws.location or "") if ws is not None else "not in the scan", missing=ws is None), 0)
    storage_key = None
    if ws is not None and ws.storage_account_id:
        sid = ws.storage_account_id
        storage_key = d.add(Node(ids.key(sid), sid, "storage", _name(sid), STORAGE, "default storage",
                                 missing=ids.key(sid) not in picture.storage_accounts), 0)
        d.edge(storage_key, ws_node)
    # Subnets first (their order sets everyone else's), then computes grouped under them.
    subnet_refs: dict[str, str] = {}
    for c in computes:
        if c.subnet_id:
            subnet_refs.setdefault(ids.key(c.subnet_id), c.subnet_id)
    subnet_rank = {sk: n for n, sk in enumerate(sorted(subnet_refs, key=lambda k: (_name(subnet_refs[k]).lower(), k)))}
    _draw_computes(d, computes, subnet_rank, ws_key, ws_node)
    for sk, rank in subnet_rank.items():
        _draw_subnet(d, picture, egress, sk, subnet_refs[sk], rank, storage_key or ws_node,
                     storage_key is not None)
    nodes, edges = d.result()
    name = _name(ws_id)
    return WorkspacePath(ws_key, ws_id, name, _group(ws_id), (ws.location or "") if ws is not None else "", nodes,
                         edges, ws is None, len(computes))


def _draw_computes(d: _Drawing, computes: list, subnet_rank: dict[str, int], ws_key: str, ws_node: str) -> None:
    """Each compute, ranked with its subnet; one outside any virtual network goes straight out."""
    no_vnet = "none:" + ws_key
    for c in sorted(computes, key=lambda c: (subnet_rank.get(ids.key(c.subnet_id or ""), 10**6), c.name.lower())):
        sk = ids.key(c.subnet_id) if c.subnet_id else None
        rank = subnet_rank[sk] if sk is not None else len(subnet_rank)
        ck = d.add(Node(ids.key(c.id), c.id, "compute", c.name, COMPUTE, c.compute_type), rank)
        if sk is None:
            d.add(Node(no_vnet, "", "none", "no virtual network", SUBNET, "public path"), rank)
            d.edge(ck, no_vnet)
            d.edge(no_vnet, ws_node)
            continue
        d.edge(ck, sk)


def _draw_subnet(d: _Drawing, picture: Picture, egress: _Egress, sk: str, ref: str, rank: int, end: str,
                 to_storage: bool) -> None:
    """A subnet, its controls (NSG, endpoint policies, route table and the firewalls it routes
    through) and their edges on to ``end``: the workspace's storage, else the workspace."""
    s = picture.subnets.get(sk)
    sid = s.id if s is not None else ref
    vnet = _name(ids.parent_id(sid))
    prefix = ", ".join(s.address_prefixes) if s is not None else ""
    d.add(Node(sk, sid, "subnet", _name(sid), SUBNET, " · ".join(x for x in (vnet, prefix) if x),
               missing=s is None), rank)
    if s is None:
        return
    controls: list[str] = []
    if s.nsg_id:
        controls.append(d.add(Node(ids.key(s.nsg_id), s.nsg_id, "nsg", _name(s.nsg_id), CONTROL, "NSG",
                                   missing=ids.key(s.nsg_id) not in picture.nsgs), rank))
    for sep in s.sep_ids:
        controls.append(d.add(Node(ids.key(sep), sep, "sep", _name(sep), CONTROL, "endpoint policy",
                                   missing=ids.key(sep) not in picture.seps), rank))
    rt_id = _route_table_id(s.raw)
    rt_key = ids.key(rt_id) if rt_id else ""
    after: list[str] = []  # what traffic reaches after this subnet's controls
    if rt_id:
        controls.append(rt_key)
        after = _draw_route_table(d, egress, rt_id, rank)
    for ctl in controls:
        d.edge(sk, ctl)
    if to_storage:
        for hop in after:
            d.edge(hop, end)
        for ctl in controls:
            if not (after and ctl == rt_key):  # a route to a firewall goes on through it
                d.edge(ctl, end)
    if not controls:
        d.edge(sk, end)


def _draw_route_table(d: _Drawing, egress: _Egress, rt_id: str, rank: int) -> list[str]:
    """A route table and the next hops its routes send traffic to, which it returns."""
    rt_key = ids.key(rt_id)
    rt = egress.route_tables.get(rt_key)
    d.add(Node(rt_key, rt_id, "routetable", _name(rt_id), CONTROL, "route table", missing=rt is None), rank)
    after = []
    for ip in _appliance_hops(rt) if rt is not None else ():
        hop = _draw_hop(d, egress, ip, rank)
        d.edge(rt_key, hop)
        after.append(hop)
    return after


def _draw_hop(d: _Drawing, egress: _Egress, ip: str, rank: int) -> str:
    """The next hop at ``ip``: a firewall of the scan with its policy chain, or an unknown appliance."""
    fw = egress.firewall_by_ip.get(ip)
    if fw is None:
        return d.add(Node(f"appliance:{ip}", "", "appliance", f"appliance {ip}", FIREWALL,
                          "not a firewall in the scan"), rank)
    hop = prev = d.add(Node(ids.key(fw), fw, "firewall", _name(fw), FIREWALL, ip), rank)
    for n, pid in enumerate(egress.policy_chain(ids.key(fw))):
        pk = d.add(Node(ids.key(pid), pid, "firewallpolicy", _name(pid), FIREWALL,
                        "firewall policy" if n == 0 else "base policy",
                        missing=ids.key(pid) not in egress.policies), rank)
        d.edge(prev, pk)
        prev = pk
    return hop

