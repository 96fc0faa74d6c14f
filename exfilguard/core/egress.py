"""Which control a guarded subnet's internet egress goes through, and what a firewall does to
a flow: the pure decisions behind the NSG exceptions, EXF-RT-01 and EXF-FW-01..03.

baseline.md "Egress through a firewall": the subnet's route table sends ``0.0.0.0/0`` either
to the internet (the NSG is the egress control, judged as written), to an Azure Firewall in
the picture (the firewall is), to some other virtual appliance (ExfilGuard cannot inspect
it), or nowhere (``None``: internet traffic is dropped). A referenced route table that is
not in the picture counts as NSG egress: the NSG is then judged as written, the safe side.

Firewall rules are worked out in Azure's processing order (base policy's groups first,
network rules before application rules, then group and collection priority), and where a
rule's source cannot be told (an IP group not in the picture, an unreadable address) it
counts as applying for a leak (EXF-FW-01) and as not applying for an Allow that would prove a
required flow open (EXF-FW-02/03); a Deny of unknown reach counts as blocking there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exfilguard.core import ids
from exfilguard.core.egress_model import AzureFirewall, FirewallPolicy, FwRule, Route, RouteTable
from exfilguard.core.findings import Notice
from exfilguard.core.nsg_decisions import is_public

if TYPE_CHECKING:
    from exfilguard.core.picture import GuardedSubnet, Picture

NSG_EGRESS = "nsg"
FIREWALLED = "firewall"
APPLIANCE = "appliance"
DROPPED = "none"

DEFAULT_ROUTE = "0.0.0.0/0"


@dataclass(frozen=True, slots=True)
class Egress:
    """How one guarded subnet reaches the internet."""

    kind: str  # NSG_EGRESS, FIREWALLED, APPLIANCE or DROPPED
    route_table: RouteTable | None = None
    route: Route | None = None  # the 0.0.0.0/0 route that decided it
    firewall: AzureFirewall | None = None
    direct_tags: frozenset[str] = frozenset()  # service tags (lowercase) routed straight to Internet

    @property
    def next_hop_ip(self) -> str | None:
        return self.route.next_hop_ip if self.route is not None else None


_NSG = Egress(NSG_EGRESS)


def _firewall_ips(picture: Picture) -> dict[str, AzureFirewall]:
    memo = picture.egress_memo
    found = memo.get(" ips")
    if found is None:
        found = {}
        for fw in picture.firewalls.values():
            for ip in fw.private_ips:
                found.setdefault(_ip_key(ip), fw)
        memo[" ips"] = found
    return found


def _ip_key(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        return ip.strip().lower()


def egress_of(picture: Picture, g: GuardedSubnet) -> Egress:
    """The egress of a guarded subnet (memoised on the picture)."""
    memo = picture.egress_memo
    known = memo.get(g.key)
    if known is not None:
        return known
    memo[g.key] = out = _decide(picture, g)
    return out


def _decide(picture: Picture, g: GuardedSubnet) -> Egress:
    s = g.subnet
    if s is None or not s.route_table_id:
        return _NSG
    table = picture.route_tables.get(ids.key(s.route_table_id))
    if table is None:
        return _NSG
    default = None
    direct = set()
    for r in table.routes:
        prefix = r.address_prefix.lower()
        if prefix == DEFAULT_ROUTE and default is None:
            default = r
        elif r.next_hop_type.lower() == "internet" and prefix and not prefix[0].isdigit() and ":" not in prefix:
            direct.add(prefix)
    tags = frozenset(direct)
    if default is None:
        return Egress(NSG_EGRESS, table, None, None, tags)
    hop = default.next_hop_type.lower()
    if hop == "virtualappliance":
        fw = _firewall_ips(picture).get(_ip_key(default.next_hop_ip or ""))
        return Egress(FIREWALLED if fw is not None else APPLIANCE, table, default, fw, tags)
    if hop == "none":
        return Egress(DROPPED, table, default, None, tags)
    return Egress(NSG_EGRESS, table, default, None, tags)


def nsg_judged_as_written(picture: Picture, subnets: Sequence[GuardedSubnet]) -> bool:
    """EXF-NSG-01 and the internet part of EXF-NSG-02 apply to an NSG unless every guarded
    subnet it is attached to sends its internet traffic elsewhere (a firewall, another
    appliance, or nowhere): one subnet with NSG egress and the NSG is its only control."""
    if not picture.route_tables or not subnets:
        return True
    return any(egress_of(picture, g).kind == NSG_EGRESS for g in subnets)


# --------------------------------------------------------------------------- firewall rules
@dataclass(frozen=True, slots=True)
class FirewallRules:
    """A firewall's rules in processing order, and where they came from."""

    firewall: AzureFirewall
    policy: FirewallPolicy | None  # None: classic collections
    rules: tuple[FwRule, ...]
    notices: tuple[Notice, ...] = ()


_KIND_ORDER = {"network": 0, "application": 1}


def firewall_rules(picture: Picture, fw: AzureFirewall) -> FirewallRules | None:
    """The firewall's effective rules in processing order; None when its policy is not in the
    picture (the firewall is then not evaluated)."""
    memo = picture.egress_memo
    mk = " rules " + ids.key(fw.id)
    if mk in memo:
        return memo[mk]
    memo[mk] = out = _firewall_rules(picture, fw)
    return out


def _firewall_rules(picture: Picture, fw: AzureFirewall) -> FirewallRules | None:
    if not fw.policy_id:
        order = sorted(enumerate(fw.classic_rules),
                       key=lambda ir: (_KIND_ORDER.get(ir[1].kind, 2), ir[1].collection_priority, ir[0]))
        return FirewallRules(fw, None, tuple(r for _, r in order))
    policy = picture.fw_policies.get(ids.key(fw.policy_id))
    if policy is None:
        return None
    chain = [policy]
    notices = []
    seen = {ids.key(policy.id)}
    while chain[-1].base_policy_id:
        bk = ids.key(chain[-1].base_policy_id)
        if bk in seen:
            break
        base = picture.fw_policies.get(bk)
        if base is None:
            notices.append(Notice("absent", chain[-1].base_policy_id, f"base policy of {chain[-1].name} is not in "
                                  "the picture; its rules were not evaluated"))
            break
        seen.add(bk)
        chain.append(base)
    keyed = []
    seq = 0
    for depth, p in enumerate(reversed(chain)):  # the outermost base policy first
        have = {ids.key(g.id) for g in p.groups}
        for gid in p.group_ids:
            if ids.key(gid) not in have:
                notices.append(Notice("absent", gid, f"rule collection group of {p.name} is not in the picture; "
                                      "it contributes no rule"))
        for g in p.groups:
            for r in g.rules:
                keyed.append(((depth, _KIND_ORDER.get(r.kind, 2), r.group_priority, r.collection_priority, seq), r))
                seq += 1
    keyed.sort(key=lambda kr: kr[0])
    return FirewallRules(fw, policy, tuple(r for _, r in keyed), tuple(notices))


def firewalls_in_use(picture: Picture) -> dict[str, tuple[AzureFirewall, list[GuardedSubnet]]]:
    """Guarded firewalls (by key) with the guarded subnets routed through each."""
    out: dict[str, tuple[AzureFirewall, list[GuardedSubnet]]] = {}
    for g in picture.guarded_subnets.values():
        e = egress_of(picture, g)
        if e.kind == FIREWALLED and e.firewall is not None:
            out.setdefault(ids.key(e.firewall.id), (e.firewall, []))[1].append(g)
    return out


def absent_notices(picture: Picture) -> list[Notice]:
    """What the egress decisions refer to but the picture lacks: route tables of guarded
    subnets (counted as NSG egress), and firewall policies and their parts."""
    out: list[Notice] = []
    if not picture.guarded_subnets:
        return out
    seen: set[str] = set()
    for g in picture.guarded_subnets.values():
        s = g.subnet
        if s is not None and s.route_table_id and ids.key(s.route_table_id) not in picture.route_tables:
            k = ids.key(s.route_table_id)
            if k not in seen:
                seen.add(k)
                out.append(Notice("absent", s.route_table_id, f"route table attached to {s.name} is not in the "
                                  "picture; the subnet was judged as using its NSG for internet egress"))
    for fw, _ in firewalls_in_use(picture).values():
        rules = firewall_rules(picture, fw)
        if rules is None:
            out.append(Notice("absent", fw.policy_id or fw.id, f"firewall policy of {fw.name} is not in the "
                              "picture; the firewall was not evaluated"))
        else:
            out.extend(rules.notices)
    return out


# --------------------------------------------------------------------------- addresses
def _networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """An address, a prefix or an ``a-b`` range as networks; None when it is none of these."""
    t = text.strip()
    try:
        if "-" in t:
            lo, hi = (ipaddress.ip_address(x.strip()) for x in t.split("-", 1))
            return list(ipaddress.summarize_address_range(lo, hi))
        return [ipaddress.ip_network(t, strict=False)]
    except (ValueError, TypeError):
        return None


def _overlaps(a: Iterable, b: Iterable) -> bool:
    return any(x.version == y.version and x.overlaps(y) for x in a for y in b)


def source_applies(picture: Picture, rule: FwRule, subnet_prefixes: Sequence[str]) -> bool | None:
    """Does the rule's source include the subnet? None when it cannot be told (an IP group not
    in the picture, an address that is not one, an unknown subnet prefix)."""
    subnet_nets = [n for p in subnet_prefixes for n in (_networks(p) or ())]
    unknown = False
    sources = list(rule.source_addresses)
    for gid in rule.source_ip_groups:
        group = picture.ip_groups.get(ids.key(gid))
        if group is None:
            unknown = True
            continue
        sources.extend(group.addresses)
    for src in sources:
        if src.strip() == "*":
            return True
        nets = _networks(src)
        if nets is None or not subnet_nets:
            unknown = True
            continue
        if _overlaps(nets, subnet_nets):
            return True
    return None if unknown else False


def is_public_address(text: str) -> bool:
    """An address, prefix or range reaching outside the private ranges (as NSG 'public prefix')."""
    t = text.strip()
    if "-" in t:
        return any(is_public(x.strip()) for x in t.split("-", 1))
    return is_public(t)


def is_address(text: str) -> bool:
    return _networks(text) is not None


# --------------------------------------------------------------------------- FQDNs
def _norm(name: str) -> str:
    return name.strip().lower().rstrip(".")


def fqdn_covers(pattern: str, name: str) -> bool:
    """Does ``pattern`` cover every host ``name`` (itself a host or a ``*.`` pattern) matches?
    ``*`` covers everything; ``*.a.b`` covers every name ending in ``.a.b``."""
    p, n = _norm(pattern), _norm(name)
    if p == "*":
        return True
    if n == "*":
        return False
    if p == n:
        return True
    return p.startswith("*.") and n.endswith(p[1:]) and len(n) > len(p) - 1


def fqdn_overlaps(a: str, b: str) -> bool:
    """Could one host be matched by both?"""
    return fqdn_covers(a, b) or fqdn_covers(b, a)


def url_host(url: str) -> str:
    u = url.strip()
    if "://" in u:
        u = u.split("://", 1)[1]
    return u.split("/", 1)[0].split(":", 1)[0]


def _ports(values: Sequence[str]) -> list[tuple[int, int]] | None:
    out = []
    for v in values:
        for part in str(v).split(","):
            t = part.strip()
            if not t:
                continue
            if t == "*":
                out.append((0, 65535))
                continue
            lo, _, hi = t.partition("-")
            try:
                out.append((int(lo), int(hi or lo)))
            except ValueError:
                return None
    return out


def _allows_443(rule: FwRule) -> bool:
    if rule.kind == "application":
        return any(p.type == "https" and (p.port in (None, 443)) for p in rule.protocols)
    if rule.kind == "network":
        if not ({"tcp", "any", "*"} & set(rule.ip_protocols)):
            return False
        ports = _ports(rule.destination_ports)
        return ports is not None and any(lo <= 443 <= hi for lo, hi in ports)
    return False


def _reaches(rule: FwRule, host: str, tags: frozenset[str], *, deny: bool) -> bool:
    """Does the rule's destination cover ``host`` (served by ``tags``), on TCP 443? For a Deny
    (``deny``), any destination that may hit the host counts."""
    if rule.kind == "application" and not rule.protocols and deny:
        pass  # a Deny with no protocol listed: assume it may hit
    elif not _allows_443(rule):
        return False
    match = fqdn_overlaps if deny else fqdn_covers
    if rule.kind == "application":
        names = list(rule.target_fqdns)
        if deny:
            names += [url_host(u) for u in rule.target_urls]
        return any(match(t, host) for t in names)
    if any(match(t, host) for t in rule.destination_fqdns):
        return True
    for d in rule.destination_addresses:
        low = d.strip().lower()
        if low == "*" or low in tags or (deny and low in ("internet", "0.0.0.0/0")):
            return True
    return False


@dataclass(frozen=True, slots=True)
class FlowDecision:
    allowed: bool
    rule: FwRule | None  # the deciding rule (None: no rule, the firewall's default deny)


def decide_host(picture: Picture, rules: Sequence[FwRule], host: str, tags: frozenset[str],
                subnet_prefixes: Sequence[str]) -> FlowDecision:
    """Is ``host`` on TCP 443 allowed from the subnet: an Allow that surely applies and covers
    it, before any Deny that may apply and may hit it?"""
    for r in rules:
        if r.action == "allow" and _reaches(r, host, tags, deny=False) \
                and source_applies(picture, r, subnet_prefixes) is True:
            return FlowDecision(True, r)
        if r.action == "deny" and _reaches(r, host, tags, deny=True) \
                and source_applies(picture, r, subnet_prefixes) is not False:
            return FlowDecision(False, r)
    return FlowDecision(False, None)


def required_hosts(region: str, curated: bool) -> list[tuple[str, frozenset[str]]]:
    """FW-02's required hosts with the service tags (lowercase) that serve each."""
    batch = frozenset({"batchnodemanagement", f"batchnodemanagement.{region}"})
    out = [(f"*.{region}.batch.azure.com", batch), (f"*.{region}.service.batch.azure.com", batch)]
    if curated:
        mcr = frozenset({"microsoftcontainerregistry", f"microsoftcontainerregistry.{region}"})
        out += [("mcr.microsoft.com", mcr), ("*.data.mcr.microsoft.com", mcr)]
    return out


def storage_hosts(region: str) -> list[tuple[str, frozenset[str]]]:
    """FW-03's storage hosts with the tags that serve them."""
    tags = frozenset({"storage", f"storage.{region}"})
    return [(f"*.{kind}.core.windows.net", tags) for kind in ("blob", "queue", "table")]


def firewall_subnet_has_storage_endpoint(picture: Picture, fw: AzureFirewall) -> bool:
    for sid in fw.subnet_ids:
        s = picture.subnets.get(ids.key(sid))
        if s is not None and any(e.service.lower().startswith("microsoft.storage") for e in s.service_endpoints):
            return True
    return False
