"""Typed views of the resources that decide a subnet's internet egress: route tables (and
their standalone routes), Azure Firewalls, firewall policies (and their standalone rule
collection groups) and IP groups.

Kept apart from :mod:`exfilguard.core.model` so the NSG views stay as they are; the parsers follow
the same rules (one interpretation per property, ``raw`` kept, :class:`BadResource` naming
the misfit) and are named by their descriptors in :mod:`exfilguard.core.types`.

A firewall rule is flattened into :class:`FwRule` with the names of its group and
collection, so a finding can say exactly which collection and rule to edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exfilguard.core import ids
from exfilguard.core.model import (
    FIREWALL,
    FW_POLICY,
    IP_GROUP,
    RCG,
    ROUTE,
    ROUTE_TABLE,
    BadResource,
    Resource,
    _common,
    _identity,
    _json_type,
    _Reader,
)


# --------------------------------------------------------------------------- views
@dataclass(frozen=True, slots=True)
class Route(Resource):
    route_table_id: str = ""
    address_prefix: str = ""
    next_hop_type: str = ""  # as written (VirtualAppliance, Internet, None, ...)
    next_hop_ip: str | None = None


@dataclass(frozen=True, slots=True)
class RouteTable(Resource):
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True, slots=True)
class AppProtocol:
    type: str  # lowercase: http, https, mssql
    port: int | None


@dataclass(frozen=True, slots=True)
class FwRule:
    """One rule of a firewall collection, with where it sits (for ordering and for words)."""

    owner_id: str  # the policy (or the firewall, for classic collections) that holds it
    group: str  # rule collection group name ("" for classic collections)
    group_priority: int
    collection: str
    collection_priority: int
    action: str  # lowercase: allow, deny
    kind: str  # "network" or "application"
    name: str
    source_addresses: tuple[str, ...] = ()
    source_ip_groups: tuple[str, ...] = ()
    # application rules
    protocols: tuple[AppProtocol, ...] = ()
    target_fqdns: tuple[str, ...] = ()
    fqdn_tags: tuple[str, ...] = ()
    web_categories: tuple[str, ...] = ()
    target_urls: tuple[str, ...] = ()
    # network rules
    ip_protocols: tuple[str, ...] = ()  # lowercase: tcp, udp, icmp, any
    destination_addresses: tuple[str, ...] = ()
    destination_fqdns: tuple[str, ...] = ()
    destination_ip_groups: tuple[str, ...] = ()
    destination_ports: tuple[str, ...] = ()

    def label(self) -> str:
        where = f"group {self.group}, " if self.group else ""
        return f"{where}collection {self.collection}, rule {self.name}"


@dataclass(frozen=True, slots=True)
class RuleCollectionGroup(Resource):
    policy_id: str = ""
    priority: int = 0
    rules: tuple[FwRule, ...] = ()


@dataclass(frozen=True, slots=True)
class FirewallPolicy(Resource):
    base_policy_id: str | None = None
    group_ids: tuple[str, ...] = ()  # references, as the policy GET lists them
    groups: tuple[RuleCollectionGroup, ...] = ()  # the standalone groups folded in by the picture


@dataclass(frozen=True, slots=True)
class AzureFirewall(Resource):
    private_ips: tuple[str, ...] = ()
    subnet_ids: tuple[str, ...] = ()  # the AzureFirewallSubnet(s) of its IP configurations
    policy_id: str | None = None
    classic_rules: tuple[FwRule, ...] = ()  # inline collections (ignored when a policy is set)


@dataclass(frozen=True, slots=True)
class IpGroup(Resource):
    addresses: tuple[str, ...] = ()


# --------------------------------------------------------------------------- parsing
def parse_route(body: Mapping[str, Any], table_id: str | None = None) -> Route:
    rid, _ = _identity(body, table_id, "routes")
    r = _Reader(rid)
    common = _common(r, body, rid, ROUTE)
    common["type"] = ROUTE
    props = r.obj(body, "properties", "") or {}
    return Route(**common, route_table_id=table_id if table_id is not None else ids.parent_id(rid),
                 address_prefix=(r.text(props, "addressPrefix", "properties") or "").strip(),
                 next_hop_type=r.text(props, "nextHopType", "properties") or "",
                 next_hop_ip=(r.text(props, "nextHopIpAddress", "properties") or "").strip() or None)


def parse_route_table(body: Mapping[str, Any], rid: str, tkey: str) -> RouteTable:
    r = _Reader(rid)
    common = _common(r, body, rid, tkey)
    props = r.obj(body, "properties", "") or {}
    return RouteTable(**common, routes=tuple(parse_route(x, rid) for x in r.objs(props, "routes", "properties")))


def _int(r: _Reader, obj: Mapping[str, Any], name: str, where: str) -> int:
    value = r.get(obj, name, int, where)
    return 0 if value is None else value


def _rule(r: _Reader, raw: Mapping[str, Any], where: str, owner: str, group: str, group_prio: int,
          collection: str, coll_prio: int, action: str, kind: str | None) -> FwRule:
    """One rule of a policy collection (``kind`` None: from its ``ruleType``) or of a classic
    collection (``kind`` given by the collection it sits in)."""
    if kind is None:
        rtype = (r.text(raw, "ruleType", where) or "").lower()
        kind = {"applicationrule": "application", "networkrule": "network"}.get(rtype, rtype or "unknown")
    protocols = []
    for i, p in enumerate(r.objs(raw, "protocols", where) if kind == "application" else ()):
        ptype = r.text(p, "protocolType", f"{where}.protocols[{i}]") or ""
        protocols.append(AppProtocol(ptype.lower(), r.get(p, "port", int, f"{where}.protocols[{i}]")))
    if kind == "network":
        ip_protocols = r.texts(raw, "ipProtocols", where) or r.texts(raw, "protocols", where)
    else:
        ip_protocols = ()
    return FwRule(owner_id=owner, group=group, group_priority=group_prio, collection=collection,
                  collection_priority=coll_prio, action=action, kind=kind,
                  name=r.text(raw, "name", where) or "",
                  source_addresses=r.texts(raw, "sourceAddresses", where),
                  source_ip_groups=r.texts(raw, "sourceIpGroups", where),
                  protocols=tuple(protocols),
                  target_fqdns=r.texts(raw, "targetFqdns", where),
                  fqdn_tags=r.texts(raw, "fqdnTags", where),
                  web_categories=r.texts(raw, "webCategories", where),
                  target_urls=r.texts(raw, "targetUrls", where),
                  ip_protocols=tuple(p.lower() for p in ip_protocols),
                  destination_addresses=r.texts(raw, "destinationAddresses", where),
                  destination_fqdns=r.texts(raw, "destinationFqdns", where),
                  destination_ip_groups=r.texts(raw, "destinationIpGroups", where),
                  destination_ports=r.texts(raw, "destinationPorts", where))


def parse_rule_collection_group(body: Mapping[str, Any], rid: str | None = None,
                                tkey: str | None = None) -> RuleCollectionGroup:
    if rid is None:
        rid, _ = _identity(body)
    r = _Reader(rid)
    common = _common(r, body, rid, RCG)
    common["type"] = RCG
    props = r.obj(body, "properties", "") or {}
    policy_id = ids.parent_id(rid)
    prio = _int(r, props, "priority", "properties")
    rules = []
    for i, coll in enumerate(r.objs(props, "ruleCollections", "properties")):
        where = f"properties.ruleCollections[{i}]"
        ctype = (r.text(coll, "ruleCollectionType", where) or "").lower()
        if ctype != "firewallpolicyfilterrulecollection":
            continue  # NAT collections translate inbound traffic: no egress decision
        name = r.text(coll, "name", where) or ""
        action = (r.text(r.obj(coll, "action", where), "type", f"{where}.action") or "").lower()
        cprio = _int(r, coll, "priority", where)
        for j, raw in enumerate(r.objs(coll, "rules", where)):
            rules.append(_rule(r, raw, f"{where}.rules[{j}]", policy_id, common["name"], prio, name, cprio, action,
                               None))
    return RuleCollectionGroup(**common, policy_id=policy_id, priority=prio, rules=tuple(rules))


def parse_firewall_policy(body: Mapping[str, Any], rid: str, tkey: str) -> FirewallPolicy:
    r = _Reader(rid)
    common = _common(r, body, rid, tkey)
    props = r.obj(body, "properties", "") or {}
    refs = []
    for i, ref in enumerate(r.objs(props, "ruleCollectionGroups", "properties")):
        gid = r.text(ref, "id", f"properties.ruleCollectionGroups[{i}]")
        if gid:
            refs.append(gid)
    return FirewallPolicy(**common, base_policy_id=r.ref(props, "basePolicy", "properties"), group_ids=tuple(refs))


_CLASSIC = (("networkRuleCollections", "network"), ("applicationRuleCollections", "application"))


def parse_firewall(body: Mapping[str, Any], rid: str, tkey: str) -> AzureFirewall:
    r = _Reader(rid)
    common = _common(r, body, rid, tkey)
    props = r.obj(body, "properties", "") or {}
    ips, subnets = [], []
    for i, conf in enumerate(r.objs(props, "ipConfigurations", "properties")):
        where = f"properties.ipConfigurations[{i}]"
        cp = r.obj(conf, "properties", where) or {}
        ip = r.text(cp, "privateIPAddress", f"{where}.properties")
        if ip:
            ips.append(ip.strip())
        sid = r.ref(cp, "subnet", f"{where}.properties")
        if sid:
            subnets.append(sid)
    hub = r.obj(props, "hubIPAddresses", "properties")
    hub_ip = r.text(hub, "privateIPAddress", "properties.hubIPAddresses")
    if hub_ip:
        ips.append(hub_ip.strip())
    classic = []
    for field_name, kind in _CLASSIC:
        for i, coll in enumerate(r.objs(props, field_name, "properties")):
            where = f"properties.{field_name}[{i}]"
            cprops = r.obj(coll, "properties", where) or {}
            action = (r.text(r.obj(cprops, "action", f"{where}.properties"), "type", f"{where}.properties.action")
                      or "").lower()
            cprio = _int(r, cprops, "priority", f"{where}.properties")
            name = r.text(coll, "name", where) or ""
            for j, raw in enumerate(r.objs(cprops, "rules", f"{where}.properties")):
                classic.append(_rule(r, raw, f"{where}.properties.rules[{j}]", rid, "", 0, name, cprio, action,
                                     kind))
    return AzureFirewall(**common, private_ips=tuple(ips), subnet_ids=tuple(subnets),
                         policy_id=r.ref(props, "firewallPolicy", "properties"), classic_rules=tuple(classic))


def parse_ip_group(body: Mapping[str, Any], rid: str, tkey: str) -> IpGroup:
    r = _Reader(rid)
    common = _common(r, body, rid, tkey)
    props = r.obj(body, "properties", "") or {}
    return IpGroup(**common, addresses=tuple(a.strip() for a in r.texts(props, "ipAddresses", "properties")))


__all__ = ["FIREWALL", "FW_POLICY", "IP_GROUP", "RCG", "ROUTE", "ROUTE_TABLE",
           "AppProtocol", "AzureFirewall", "BadResource", "FirewallPolicy", "FwRule", "IpGroup", "Route",
           "RouteTable", "RuleCollectionGroup", "_json_type"]
