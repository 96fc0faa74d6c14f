"""The NSG decision engine: what an NSG does to an outbound flow from one subnet.

Implements "NSG evaluation semantics" of the baseline exactly. Where it cannot be told
whether a rule applies (application security groups, an unknown subnet prefix) the engine
is conservative in the direction that never hides a leak: an Allow counts as applying, a
Deny does not.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from exfilguard.core.model import GENERIC_INTERNET, RuleFacts, SecurityRule

__all__ = ["GENERIC_INTERNET", "Flow", "decide", "decide_all", "internet_leak", "matches", "source_applies"]
PROTOCOLS = ("tcp", "udp", "icmp", "esp", "ah")

_PRIVATE_V4 = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16"))
_PRIVATE_V6 = tuple(ipaddress.ip_network(n) for n in ("fc00::/7", "fe80::/10", "::1/128"))


def as_network(prefix: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The prefix as a network, or None when it is a service tag or ``*``."""
    text = prefix.strip()
    if not text or text == "*" or not (text[0].isdigit() or ":" in text):
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def is_public(prefix: str) -> bool:
    """A CIDR or address outside the private, shared, loopback and link-local ranges."""
    net = as_network(prefix)
    if net is None:
        return False
    ranges = _PRIVATE_V4 if net.version == 4 else _PRIVATE_V6
    return not any(net.subnet_of(r) for r in ranges)  # type: ignore[arg-type]


def _ports_cover(rule: SecurityRule, port: int | None) -> bool:
    if port is None:
        return rule.facts.all_ports
    for p in rule.dest_ports:  # noqa: SIM110 - a plain loop: any() over a generator costs more here
        if p.lo <= port <= p.hi:
            return True
    return False


def _protocol_covers(rule: SecurityRule, protocol: str | None) -> bool:
    if protocol is None:
        return rule.protocol == "*"
    return rule.protocol in ("*", protocol)


def source_applies(rule: SecurityRule, subnet_prefixes: Sequence[str]) -> bool:
    """Does the rule's source include traffic from the subnet?"""
    if rule.facts.from_vnet:  # * or VirtualNetwork, the usual source: applies to every subnet
        return True
    conservative = rule.access == "allow"
    if rule.source_asg:
        return conservative
    for src in rule.source_prefixes:
        s = src.lower()
        if s in ("*", "virtualnetwork"):
            return True
        net = as_network(src)
        if net is None:
            continue
        if not subnet_prefixes:
            if conservative:
                return True
            continue
        for sp in subnet_prefixes:
            snet = as_network(sp)
            if snet is not None and snet.version == net.version and snet.subnet_of(net):  # type: ignore[arg-type]
                return True
    return False


@dataclass(frozen=True, slots=True)
class Flow:
    """An outbound flow: ``protocol``/``port`` None mean "all" (used by EXF-NSG-01)."""

    protocol: str | None
    port: int | None
    tag: str | None  # a service tag, or None for a generic internet destination

    def label(self) -> str:
        proto = (self.protocol or "*").upper()
        return f"{self.tag or 'Internet'} {proto}/{self.port if self.port is not None else '*'}"


def matches(rule: SecurityRule, flow: Flow, subnet_prefixes: Sequence[str]) -> bool:
    """Does ``rule`` apply to ``flow`` from a subnet with ``subnet_prefixes``?"""
    return _matches(rule, flow, _tag_keys(flow.tag), subnet_prefixes)


_ANYWHERE = ("*", "0.0.0.0/0")
_VIRTUAL_NETWORK = "virtualnetwork"


def _tag_keys(tag: str | None) -> frozenset[str] | None:
    """The lowercase rule destinations that cover ``tag``: ``*``, ``0.0.0.0/0``, ``Internet``
    (except for ``VirtualNetwork``, which the Internet tag excludes), the tag and, for a
    regional tag, its global form; None for no tag (a generic internet destination, which
    only the generic internet destinations cover: ``RuleFacts.to_internet``)."""
    if tag is None:
        return None
    t = tag.lower()
    own = (t, t.split(".", 1)[0]) if "." in t else (t,)
    return frozenset((*own, *_ANYWHERE) if t == _VIRTUAL_NETWORK else (*own, *GENERIC_INTERNET))


def _matches(rule: SecurityRule, flow: Flow, keys: frozenset[str] | None, subnet_prefixes: Sequence[str]) -> bool:
    # The destination first: it rules out most rules for a given flow.
    facts = rule.facts
    if not facts.to_internet if keys is None else facts.dest_keys.isdisjoint(keys):
        return False
    return (_protocol_covers(rule, flow.protocol) and _ports_cover(rule, flow.port)
            and source_applies(rule, subnet_prefixes))


def decide(ordered: Iterable[SecurityRule], flow: Flow,
           subnet_prefixes: Sequence[str]) -> tuple[str, SecurityRule | None]:
    """The effective access of ``flow`` and the rule that decided it (first match wins)."""
    keys = _tag_keys(flow.tag)
    for rule in ordered:
        if _matches(rule, flow, keys, subnet_prefixes):
            return rule.access, rule
    return "deny", None


def decide_all(ordered: Iterable[SecurityRule], flows: tuple[Flow, ...],
               subnet_prefixes: Sequence[str]) -> list[tuple[str, SecurityRule | None]]:
    """:func:`decide` of each of ``flows``, in one pass over the rules.

    EXF-NSG-03 asks the same few required flows of every guarded NSG, twice when a fix is
    planned: one walk of the rules answers them all. A rule's destinations name the flows it
    may cover (looked up by destination, not tried against every flow); each rule is looked
    at until every flow is decided."""
    out: list[tuple[str, SecurityRule | None] | None] = [None] * len(flows)
    left = len(flows)
    by_dest: dict[str | None, list[int]] = {}  # lowercase destination (None: the internet) -> flows
    for i, flow in enumerate(flows):
        keys = _tag_keys(flow.tag)
        for k in keys if keys is not None else (None,):
            by_dest.setdefault(k, []).append(i)
    for rule in ordered:
        facts = rule.facts
        candidates = [i for d in facts.dest_keys for i in by_dest.get(d, ())]
        if facts.to_internet:
            candidates += by_dest.get(None, ())
        covered = [i for i in candidates if out[i] is None and _covers(facts, flows[i])]
        if not covered or not (facts.from_vnet or source_applies(rule, subnet_prefixes)):
            continue
        for i in covered:
            if out[i] is None:
                out[i] = (rule.access, rule)
                left -= 1
        if not left:
            break
    return [o if o is not None else ("deny", None) for o in out]


def _covers(facts: RuleFacts, flow: Flow) -> bool:
    """Do a rule's protocol and ports (of these facts) cover the flow? Its destination and
    source aside."""
    if facts.protocol != "*" and (flow.protocol is None or facts.protocol != flow.protocol):
        return False
    if flow.port is None:
        return facts.all_ports
    return any(p.lo <= flow.port <= p.hi for p in facts.dest_ports)


def internet_leak(ordered: Sequence[SecurityRule], subnet_prefixes: Sequence[str]) -> tuple[bool, str]:
    """EXF-NSG-01's test: is outbound traffic to a generic internet destination allowed on
    some protocol or port? Returns (leaks, explanation).

    It leaks when an Allow to the internet that applies to the subnet has a lower priority
    number than the first Deny of all internet traffic (any protocol, all ports) that
    applies, or when there is no such Deny: one pass in evaluation order."""
    leak = None  # the first Allow to the internet that applies
    for rule in ordered:
        facts = rule.facts
        if not facts.to_internet:
            continue
        if rule.access == "deny":
            if facts.protocol == "*" and facts.all_ports and source_applies(rule, subnet_prefixes):
                if leak is None or leak.priority >= rule.priority:
                    return False, f"internet traffic is denied by {rule.name} ({rule.priority})"
                return True, (f"rule {leak.name} (priority {leak.priority}) allows internet traffic before deny "
                              f"rule {rule.name} ({rule.priority})")
        elif leak is None and source_applies(rule, subnet_prefixes):
            leak = rule
    if leak is None:
        return True, "no Deny rule for internet destinations on all protocols and ports applies"
    return True, f"rule {leak.name} (priority {leak.priority}) allows internet traffic"


def free_priority(taken: set[int], start: int, floor: int = 100) -> int | None:
    """The nearest free priority at or below ``start`` (toward higher precedence)."""
    for p in range(start, floor - 1, -1):
        if p not in taken:
            return p
    return None

