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
from functools import lru_cache

from .frozen import quick_init
from .model import GENERIC_INTERNET, SecurityRule

__all__ = ["GENERIC_INTERNET", "Flow", "decide", "internet_leak", "matches", "source_applies"]
PROTOCOLS = ("tcp", "udp", "icmp", "esp", "ah")

_PRIVATE_V4 = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16"))
_PRIVATE_V6 = tuple(ipaddress.ip_network(n) for n in ("fc00::/7", "fe80::/10", "::1/128"))


@lru_cache(maxsize=8192)
def as_network(prefix: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The prefix as a network, or None when it is a service tag or ``*``."""
    text = prefix.strip()
    if not text or text == "*" or not (text[0].isdigit() or ":" in text):
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


@lru_cache(maxsize=8192)
def is_public(prefix: str) -> bool:
    """A CIDR or address outside the private, shared, loopback and link-local ranges."""
    net = as_network(prefix)
    if net is None:
        return False
    ranges = _PRIVATE_V4 if net.version == 4 else _PRIVATE_V6
    return not any(net.subnet_of(r) for r in ranges)  # type: ignore[arg-type]


def is_service_tag(prefix: str) -> bool:
    return prefix.strip() != "*" and as_network(prefix) is None


def tag_matches(rule_dest: str, tag: str) -> bool:
    """Does a rule destination cover service tag ``tag`` (e.g. ``Storage.westeurope``)?"""
    d = rule_dest.strip().lower()
    if d in GENERIC_INTERNET:
        return True
    t = tag.lower()
    return d == t or ("." in t and d == t.split(".", 1)[0])


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


@quick_init
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


@lru_cache(maxsize=256)
def _tag_keys(tag: str | None) -> tuple[str, ...] | None:
    """The lowercase destinations (besides the generic internet ones) that cover ``tag``: the
    tag and, for a regional tag, its global form (as :func:`tag_matches`); None for no tag."""
    if tag is None:
        return None
    t = tag.lower()
    return (t, t.split(".", 1)[0]) if "." in t else (t,)


def _matches(rule: SecurityRule, flow: Flow, keys: tuple[str, ...] | None, subnet_prefixes: Sequence[str]) -> bool:
    # The destination first: it rules out most rules for a given flow. The same tests as
    # tag_matches(), on the rule's lowercase destinations and the flow's tag lowered once.
    facts = rule.facts
    if not facts.to_internet and (keys is None or facts.dest_keys.isdisjoint(keys)):
        return False
    return (_protocol_covers(rule, flow.protocol) and _ports_cover(rule, flow.port)
            and source_applies(rule, subnet_prefixes))


def decide(ordered: Iterable[SecurityRule], flow: Flow,
           subnet_prefixes: Sequence[str]) -> tuple[str, SecurityRule | None]:
    """The effective access of ``flow`` and the rule that decided it (first match wins)."""
    keys = _tag_keys(flow.tag)
    protocol, port = flow.protocol, flow.port
    for rule in ordered:
        # _matches() inline, most rules failing at the destination: it is asked for every
        # required flow of every NSG an event touches.
        facts = rule.facts
        if not facts.to_internet and (keys is None or facts.dest_keys.isdisjoint(keys)):
            continue
        if protocol is None:
            if rule.protocol != "*":
                continue
        elif rule.protocol != "*" and rule.protocol != protocol:
            continue
        ports = rule.dest_ports
        if port is None or len(ports) != 1:
            if not _ports_cover(rule, port):
                continue
        elif not ports[0].lo <= port <= ports[0].hi:
            continue
        if facts.from_vnet or source_applies(rule, subnet_prefixes):
            return rule.access, rule
    return "deny", None


def internet_leak(ordered: Sequence[SecurityRule], subnet_prefixes: Sequence[str]) -> tuple[bool, str]:
    """EXF-NSG-01's test: is outbound traffic to a generic internet destination allowed on
    some protocol or port? Returns (leaks, explanation)."""
    full_deny = None
    for rule in ordered:
        facts = rule.facts
        if (rule.access == "deny" and rule.protocol == "*" and facts.all_ports and facts.to_internet
                and source_applies(rule, subnet_prefixes)):
            full_deny = rule
            break
    for rule in ordered:
        if full_deny is not None and rule.priority >= full_deny.priority:
            break
        if rule.access == "allow" and rule.facts.to_internet and source_applies(rule, subnet_prefixes):
            where = f"before deny rule {full_deny.name} ({full_deny.priority})" if full_deny else ""
            return True, f"rule {rule.name} (priority {rule.priority}) allows internet traffic {where}".strip()
    if full_deny is None:
        return True, "no Deny rule for internet destinations on all protocols and ports applies"
    return False, f"internet traffic is denied by {full_deny.name} ({full_deny.priority})"


def free_priority(taken: set[int], start: int, floor: int = 100) -> int | None:
    """The nearest free priority at or below ``start`` (toward higher precedence)."""
    for p in range(start, floor - 1, -1):
        if p not in taken:
            return p
    return None


def protocols_of(rule: SecurityRule) -> tuple[str, ...]:
    return PROTOCOLS if rule.protocol == "*" else (rule.protocol,)
