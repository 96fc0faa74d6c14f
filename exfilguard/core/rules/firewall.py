"""Egress through a route table and an Azure Firewall (the seed's "Firewall" tab): a virtual
appliance ExfilGuard cannot inspect (EXF-RT-01), firewall Allow rules to destinations that
can receive data (EXF-FW-01), required Azure ML hosts the firewall blocks (EXF-FW-02), and the
storage hosts a firewall subnet with a storage service endpoint must allow (EXF-FW-03).

All alert-only: a firewall policy usually serves many networks, so a person edits it. Each
finding says which group, collection and rule, and what to change. The decisions themselves
live in :mod:`exfilguard.core.egress`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from exfilguard.core import egress, ids, types
from exfilguard.core.catalog import RULES as CATALOG
from exfilguard.core.egress_model import FwRule
from exfilguard.core.findings import Finding
from exfilguard.core.model import FIREWALL, FW_POLICY, ROUTE_TABLE
from exfilguard.core.picture import GuardedSubnet
from exfilguard.core.rules.base import Context
from exfilguard.core.rules.nsg import _permitted_for

RT_01 = CATALOG["EXF-RT-01"]
FW_01 = CATALOG["EXF-FW-01"]
FW_02 = CATALOG["EXF-FW-02"]
FW_03 = CATALOG["EXF-FW-03"]

RULES = (RT_01, FW_01, FW_02, FW_03)
TARGETS = types.targets([r.id for r in RULES])  # resource types its findings are about


def _name(rid: str) -> str:
    return rid.rstrip("/").rsplit("/", 1)[-1]


def evaluate(ctx: Context) -> Iterator[Finding]:
    pic = ctx.picture
    if not pic.route_tables:
        return
    yield from _rt01(ctx)
    for fw, subnets in egress.firewalls_in_use(pic).values():
        rules = egress.firewall_rules(pic, fw)
        if rules is None:
            continue  # policy not in the picture: a notice says so
        yield from _fw01(ctx, rules, subnets)
        yield from _fw02(ctx, rules, subnets)
        yield from _fw03(ctx, rules, subnets)


def _rt01(ctx: Context) -> Iterator[Finding]:
    trusted = {egress._ip_key(ip) for ip in ctx.config.trusted_egress_appliances}
    by_table: dict[str, tuple[str, list[str]]] = {}
    for g in ctx.picture.guarded_subnets.values():
        e = egress.egress_of(ctx.picture, g)
        if e.kind != egress.APPLIANCE or e.route_table is None:
            continue
        ip = e.next_hop_ip or "(no next-hop IP)"
        if egress._ip_key(ip) in trusted:
            continue
        item = f"subnet {_name(g.id)}: route {e.route.name if e.route else '?'} sends 0.0.0.0/0 to {ip}"
        by_table.setdefault(ids.key(e.route_table.id), (e.route_table.id, []))[1].append(item)
    for rid, items in by_table.values():
        yield RT_01.finding(
            rid, ROUTE_TABLE, "; ".join(items) + ", a virtual appliance that is not an Azure Firewall in the "
            "subscription", items=items,
            fix_summary="alert: send 0.0.0.0/0 to an Azure Firewall ExfilGuard can read, or add the appliance's IP "
            "to trusted_egress_appliances once its egress policy has been reviewed")


def _allowed_fqdns(ctx: Context, regions: tuple[str, ...], storage: bool) -> list[str]:
    out: list[str] = []
    for p in ctx.config.fqdn_allow_list:
        if "<region>" in p:
            out.extend(p.replace("<region>", r) for r in regions)
        else:
            out.append(p)
    if storage:
        out += [h for r in regions or ("",) for h, _ in egress.storage_hosts(r)]
    return out


def _leaks(ctx: Context, rule: FwRule, allowed: list[str], permitted: Any) -> list[str]:
    """What an Allow rule opens beyond the documented set (EXF-FW-01)."""
    pic = ctx.picture
    bad: list[str] = []

    def covered(host: str) -> bool:
        return any(egress.fqdn_covers(a, host) for a in allowed)

    if rule.kind == "application":
        bad += [f"FQDN {t}" for t in rule.target_fqdns if not covered(t)]
        bad += [f"URL {u}" for u in rule.target_urls if not covered(egress.url_host(u))]
        bad += [f"FQDN tag {t}" for t in rule.fqdn_tags]
        bad += [f"web category {w}" for w in rule.web_categories]
        return bad
    for d in rule.destination_addresses:
        low = d.strip().lower()
        if low in ("*", "internet", "0.0.0.0/0"):
            bad.append(f"destination {d}")
        elif egress.is_address(d):
            if egress.is_public_address(d):
                bad.append(f"public address {d}")
        elif low not in permitted:
            bad.append(f"service tag {d}")
    bad += [f"FQDN {t}" for t in rule.destination_fqdns if not covered(t)]
    for gid in rule.destination_ip_groups:
        group = pic.ip_groups.get(ids.key(gid))
        if group is None:
            bad.append(f"IP group {_name(gid)} (not in the picture)")
        else:
            bad += [f"IP group {group.name} address {a}" for a in group.addresses if egress.is_public_address(a)]
    return bad


def _owner(ctx: Context, rules: egress.FirewallRules, rule: FwRule) -> tuple[str, str]:
    """The resource a finding about ``rule`` names: its policy (a base policy for an inherited
    rule) or the firewall for classic collections; and that resource's type."""
    if rules.policy is None:
        return rules.firewall.id, FIREWALL
    policy = ctx.picture.fw_policies.get(ids.key(rule.owner_id))
    return (policy.id if policy is not None else rule.owner_id), FW_POLICY


def _fw01(ctx: Context, rules: egress.FirewallRules, subnets: list[GuardedSubnet]) -> Iterator[Finding]:
    pic = ctx.picture
    storage = egress.firewall_subnet_has_storage_endpoint(pic, rules.firewall)
    by_owner: dict[str, tuple[str, str, dict[str, None]]] = {}
    for g in subnets:
        prefixes = g.subnet.address_prefixes if g.subnet else ()
        allowed = _allowed_fqdns(ctx, g.regions, storage)
        permitted = _permitted_for(tuple(sorted(g.regions)), tuple(ctx.config.extra_service_tags))
        for rule in rules.rules:
            if rule.action != "allow" or egress.source_applies(pic, rule, prefixes) is False:
                continue
            bad = _leaks(ctx, rule, allowed, permitted)
            if bad:
                owner, otype = _owner(ctx, rules, rule)
                entry = by_owner.setdefault(ids.key(owner), (owner, otype, {}))
                entry[2][f"{rule.label()} ({rule.kind} rule, firewall {rules.firewall.name}) allows "
                         f"{', '.join(bad)}"] = None
    for owner, otype, found in by_owner.values():
        items = list(found)
        where = "firewall" if otype == FIREWALL else "firewall policy"
        yield FW_01.finding(
            owner, otype, f"{where} {_name(owner)} lets guarded subnets reach destinations outside the documented "
            "set: " + "; ".join(items), items=items,
            fix_summary=f"alert: in {where} {_name(owner)}, remove those destinations from the named rules or "
            "narrow them to the allowed FQDNs and permitted service tags (or add an approved host to the FQDN "
            "allow-list)")


def _check_hosts(ctx: Context, rules: egress.FirewallRules, subnets: list[GuardedSubnet],
                 hosts_for: Any) -> list[str]:
    pic = ctx.picture
    items: dict[str, None] = {}
    for g in subnets:
        prefixes = g.subnet.address_prefixes if g.subnet else ()
        direct = egress.egress_of(pic, g).direct_tags
        for region in g.regions:
            for host, tags in hosts_for(region):
                if direct & tags:
                    continue  # routed straight to Internet: bypasses the firewall (NSG-03 still asks)
                d = egress.decide_host(pic, rules.rules, host, tags, prefixes)
                if not d.allowed:
                    why = f"denied by {d.rule.label()}" if d.rule else "no Allow rule that applies covers it"
                    items[f"subnet {_name(g.id)}: {host} on Https:443 {why}"] = None
    return list(items)


def _subject(rules: egress.FirewallRules) -> tuple[str, str, str]:
    if rules.policy is None:
        return rules.firewall.id, FIREWALL, f"firewall {rules.firewall.name}"
    return rules.policy.id, FW_POLICY, f"firewall policy {rules.policy.name}"


def _fw02(ctx: Context, rules: egress.FirewallRules, subnets: list[GuardedSubnet]) -> Iterator[Finding]:
    curated = ctx.config.curated_environments
    items = _check_hosts(ctx, rules, subnets, lambda region: egress.required_hosts(region, curated))
    if items:
        rid, rtype, what = _subject(rules)
        yield FW_02.finding(
            rid, rtype, f"{what} (firewall {rules.firewall.name}) blocks required hosts: " + "; ".join(items),
            items=items,
            fix_summary=f"alert: in {what}, add an Allow application rule for the listed hosts on Https:443 "
            "(source: the guarded subnets) in a collection processed before the blocking Deny")


def _fw03(ctx: Context, rules: egress.FirewallRules, subnets: list[GuardedSubnet]) -> Iterator[Finding]:
    fw = rules.firewall
    if not egress.firewall_subnet_has_storage_endpoint(ctx.picture, fw):
        return
    items = _check_hosts(ctx, rules, subnets, egress.storage_hosts)
    if items:
        what = f"firewall policy {rules.policy.name}" if rules.policy is not None else f"firewall {fw.name}"
        yield FW_03.finding(
            fw.id, FIREWALL, f"firewall {fw.name}'s subnet has a Microsoft.Storage service endpoint but the "
            "firewall blocks: " + "; ".join(items), items=items,
            fix_summary=f"alert: in {what}, allow *.blob.core.windows.net, *.queue.core.windows.net and "
            "*.table.core.windows.net on Https:443 for the guarded subnets")
