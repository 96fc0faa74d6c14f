"""The closure of an event around egress resources: route tables, Azure Firewalls, firewall
policies (and their rule collection groups) and IP groups.

Kept beside :mod:`.closure` and driven by its :class:`~.closure.ClosureReader` (its cached
``get``, compute index and ``affected`` set), so each resource is still read at most once per
invocation. The shapes:

- a guarded subnet's NSG verdict depends on its route table (NSG-01/NSG-02 exceptions), so any
  closure that evaluates an NSG reads the route tables of its guarded subnets;
- a route table change re-evaluates its subnets (their NSGs and policies, as a subnet write
  does) and, when ``0.0.0.0/0`` goes to a virtual appliance, the firewall behind it;
- a firewall, policy, rule collection group or IP group change re-evaluates every firewall
  that uses the policy or a policy based on it: the policy chain and its groups, the IP groups
  the rules name, the firewall and its own subnet's VNet (EXF-FW-03), and the guarded subnets
  routed to it (found by listing route tables once: ARM keeps no firewall -> route table
  reference). NSGs are not read there: a firewall's rules change no NSG finding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exfilguard.core import ids

if TYPE_CHECKING:
    from exfilguard.flows.closure import ClosureReader

DEFAULT_ROUTE = "0.0.0.0/0"


def _props(body: Any) -> dict[str, Any]:
    props = body.get("properties") if isinstance(body, dict) else None
    return props if isinstance(props, dict) else {}


def _ref(obj: Any) -> str | None:
    rid = obj.get("id") if isinstance(obj, dict) else None
    return rid.strip() if isinstance(rid, str) and rid.strip() else None


def _refs(items: Any) -> list[str]:
    return [r for r in (_ref(i) for i in (items if isinstance(items, list) else [])) if r]


def _cache(reader: ClosureReader) -> dict[str, Any]:
    return reader.__dict__.setdefault("_egress", {})


def _keep(reader: ClosureReader, body: dict[str, Any]) -> None:
    """A body that came in a list: kept as if read on its own (never read again)."""
    k = ids.key(body["id"])
    reader.read.bodies.setdefault(k, body)
    reader._fetched.add(k)


def default_hop(table_body: dict[str, Any]) -> str | None:
    """The next-hop IP of the table's ``0.0.0.0/0`` route to a virtual appliance, if any."""
    for r in _props(table_body).get("routes") or []:
        p = _props(r)
        if str(p.get("addressPrefix", "")).strip() == DEFAULT_ROUTE:
            if str(p.get("nextHopType", "")).lower() == "virtualappliance" and isinstance(p.get("nextHopIpAddress"),
                                                                                          str):
                return p["nextHopIpAddress"].strip()
            return None
    return None


# ------------------------------------------------------------------------------ entry points
def subnet_route(reader: ClosureReader, subnet_props: dict[str, Any], *, whole: bool) -> None:
    """Read a guarded subnet's route table (its NSG's verdict depends on it); ``whole``: the
    route table's own findings (RT-01) and the firewall behind it are evaluated too."""
    rt = _ref(subnet_props.get("routeTable"))
    if rt is None:
        return
    body = reader.get(rt)
    if body is None or not whole:
        return
    reader._affect(body.get("id") or rt)
    ip = default_hop(body)
    if ip is not None:
        fw = _firewall_with_ip(reader, ip)
        if fw is not None:
            firewall(reader, fw, with_subnets=False)


def route_table(reader: ClosureReader, table_id: str) -> None:
    """A route table changed: its guarded subnets (as a subnet write) and the firewall behind it."""
    body = reader.existing(table_id, "route table")
    if body is None:
        return
    reader._affect(body.get("id") or table_id)
    for sid in _refs(_props(body).get("subnets")):
        parsed = ids.try_parse(sid)
        if parsed is not None and parsed.parent is not None:
            reader.vnet(str(parsed.parent), only_subnet=sid)
    ip = default_hop(body)
    if ip is not None:
        fw = _firewall_with_ip(reader, ip)
        if fw is not None:
            firewall(reader, fw, with_subnets=False)


def firewall(reader: ClosureReader, firewall_id: str, *, with_subnets: bool = True) -> None:
    """A firewall, its policy chain, groups and IP groups, its own subnet's VNet, and (``with_subnets``)
    the guarded subnets routed to it."""
    if not reader._once("firewall", firewall_id):
        return
    body = reader.existing(firewall_id, "firewall")
    if body is None:
        return
    reader._affect(body.get("id") or firewall_id)
    props = _props(body)
    ips = set()
    for conf in props.get("ipConfigurations") or []:
        cp = _props(conf)
        if isinstance(cp.get("privateIPAddress"), str):
            ips.add(cp["privateIPAddress"].strip())
        sid = _ref(cp.get("subnet"))
        parsed = ids.try_parse(sid) if sid else None
        if parsed is not None and parsed.parent is not None:
            reader.get(str(parsed.parent))  # EXF-FW-03 reads the firewall subnet's service endpoints
    hub = props.get("hubIPAddresses")
    if isinstance(hub, dict) and isinstance(hub.get("privateIPAddress"), str):
        ips.add(hub["privateIPAddress"].strip())
    policy_id = _ref(props.get("firewallPolicy"))
    if policy_id is not None:
        _policy_chain(reader, policy_id)
    else:
        _ip_groups(reader, props.get("networkRuleCollections"), props.get("applicationRuleCollections"))
    if with_subnets and ips:
        _subnets_routed_to(reader, ips)


def policy(reader: ClosureReader, policy_id: str) -> None:
    """A policy (or one of its groups) changed: every firewall using it or a policy based on it."""
    body = reader.existing(policy_id, "firewall policy")
    if body is None:
        return
    seen: set[str] = set()
    todo = [(policy_id, body)]
    firewalls: list[str] = []
    while todo:
        pid, p = todo.pop()
        k = ids.key(pid)
        if k in seen:
            continue
        seen.add(k)
        rid = p.get("id")
        reader._affect(rid if isinstance(rid, str) else pid)
        firewalls += _refs(_props(p).get("firewalls"))
        for child in _refs(_props(p).get("childPolicies")):
            cb = reader.get(child)
            if cb is not None:
                todo.append((child, cb))
    if not firewalls:
        reader.read.notes.append(f"firewall policy {policy_id} is used by no firewall; nothing to evaluate")
    for fw in firewalls:
        firewall(reader, fw)


def ip_group(reader: ClosureReader, group_id: str) -> None:
    """An IP group changed: the policies and firewalls whose rules name it (ARM lists them)."""
    body = reader.existing(group_id, "IP group")
    if body is None:
        return
    props = _props(body)
    for p in _refs(props.get("firewallPolicies")):
        policy(reader, p)
    for fw in _refs(props.get("firewalls")):
        firewall(reader, fw)


# ------------------------------------------------------------------------------ helpers
def _policy_chain(reader: ClosureReader, policy_id: str) -> None:
    seen: set[str] = set()
    current: str | None = policy_id
    while current and ids.key(current) not in seen:
        seen.add(ids.key(current))
        body = reader.get(current)
        if body is None:
            return  # not in the picture: the firewall is not evaluated (a notice says so)
        reader._affect(body["id"] if isinstance(body.get("id"), str) else current)
        for gid in _refs(_props(body).get("ruleCollectionGroups")):
            group = reader.get(gid)
            if group is not None:
                _ip_groups(reader, _props(group).get("ruleCollections"))
        current = _ref(_props(body).get("basePolicy"))


def _ip_groups(reader: ClosureReader, *collection_lists: Any) -> None:
    for collections in collection_lists:
        for coll in collections if isinstance(collections, list) else []:
            rules = coll.get("rules") if isinstance(coll, dict) and "rules" in coll else _props(coll).get("rules")
            for rule in rules if isinstance(rules, list) else []:
                if not isinstance(rule, dict):
                    continue
                for field in ("sourceIpGroups", "destinationIpGroups"):
                    for gid in rule.get(field) or []:
                        if isinstance(gid, str) and ids.try_parse(gid) is not None:
                            reader.get(gid)


def _firewall_with_ip(reader: ClosureReader, ip: str) -> str | None:
    cache = _cache(reader)
    by_ip = cache.get("firewalls")
    if by_ip is None:
        by_ip = {}
        for fw in reader.client.list_type("Microsoft.Network/azureFirewalls"):
            if not isinstance(fw.get("id"), str):
                continue
            props = _props(fw)
            for conf in props.get("ipConfigurations") or []:
                addr = _props(conf).get("privateIPAddress")
                if isinstance(addr, str):
                    by_ip.setdefault(addr.strip(), fw["id"])
            hub = props.get("hubIPAddresses")
            if isinstance(hub, dict) and isinstance(hub.get("privateIPAddress"), str):
                by_ip.setdefault(hub["privateIPAddress"].strip(), fw["id"])
            _keep(reader, fw)
        cache["firewalls"] = by_ip
    return by_ip.get(ip)


def _subnets_routed_to(reader: ClosureReader, ips: set[str]) -> None:
    """Guarded subnets whose route table sends 0.0.0.0/0 to one of ``ips`` (one list of route tables)."""
    cache = _cache(reader)
    tables = cache.get("route_tables")
    if tables is None:
        tables = [t for t in reader.client.list_type("Microsoft.Network/routeTables") if isinstance(t.get("id"), str)]
        cache["route_tables"] = tables
    for table in tables:
        if default_hop(table) not in ips:
            continue
        _keep(reader, table)
        reader._affect(table["id"])
        subnet_ids = _refs(_props(table).get("subnets"))
        computes = reader._computes_on(subnet_ids)
        for sid in subnet_ids:
            on_subnet = computes.get(ids.key(sid))
            if not (on_subnet or reader._configured(sid)):
                continue
            parsed = ids.try_parse(sid)
            if parsed is None or parsed.parent is None or reader.get(str(parsed.parent)) is None:
                continue
            reader._guard(sid, on_subnet or [], per_workspace=False)
