"""NSG rules for guarded NSGs: deny the internet, allow only the low-risk service tags Azure
ML needs, keep those narrow, and close inbound from the internet (seed: "Allow inbound and
outbound network traffic", the list of required outbound service tags).

The family is evaluated per NSG in one pass because its fixes interact: the deny rule that
EXF-NSG-01 adds, or an Allow that EXF-NSG-02 turns into a Deny, could block a flow Azure ML
needs. The planned state is therefore checked again, and the Allow rules that keep required
flows working travel with the fix that would otherwise break them, so one write converges.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from types import MappingProxyType

from exfilguard.core import nsg_decisions as engine
from exfilguard.core import types
from exfilguard.core.catalog import RULES as CATALOG
from exfilguard.core.egress import nsg_judged_as_written
from exfilguard.core.findings import Finding
from exfilguard.core.fixes import Edit, EditError, Sel, apply_edit, apply_edits, copy_json, selects, upsert_position
from exfilguard.core.model import (
    ALL_PORTS,
    NSG,
    RULE,
    Nsg,
    PortRange,
    RuleFacts,
    SecurityRule,
    ordered_rules,
    parse_rule,
)
from exfilguard.core.picture import GuardedSubnet
from exfilguard.core.rules.base import Context

NSG_01 = CATALOG["EXF-NSG-01"]
NSG_02 = CATALOG["EXF-NSG-02"]
NSG_03 = CATALOG["EXF-NSG-03"]
NSG_04 = CATALOG["EXF-NSG-04"]
NSG_05 = CATALOG["EXF-NSG-05"]

RULES = (NSG_01, NSG_02, NSG_03, NSG_04, NSG_05)
TARGETS = types.targets([r.id for r in RULES])  # resource types its findings are about

DENY_RULE_NAME = "exfilguard-deny-internet-outbound"
_RULES_PATH = ("properties", "securityRules")

# Documented protocol/ports per permitted tag; None = any protocol/port.
_ANY = None
_TCP443 = MappingProxyType({"tcp": frozenset({443})})
_PERMITTED: dict[str, MappingProxyType | None] = {
    "batchnodemanagement.<region>": MappingProxyType({"*": frozenset({443})}),
    "azuremachinelearning": MappingProxyType({"tcp": frozenset({443, 8787, 18881}), "udp": frozenset({5831})}),
    "storage.<region>": MappingProxyType({"tcp": frozenset({443, 445})}),
    "microsoftcontainerregistry.<region>": _TCP443,
    # The global tag too: Microsoft's registry is read-only to customers, and the inbound and
    # outbound article (and Microsoft's end-to-end secure template) allow it.
    "microsoftcontainerregistry": _TCP443,
    "azurefrontdoor.firstparty": _TCP443,
    "azureactivedirectory": MappingProxyType({"tcp": frozenset({80, 443})}),
    "azureresourcemanager": _TCP443,
    "azuremonitor": _TCP443,
    "azurekeyvault.<region>": _TCP443,
    "virtualnetwork": _ANY,
}


def _permitted_for(regions: tuple[str, ...], extra_tags: tuple[str, ...]) -> Mapping[str, str | None]:
    """Permitted tag (lowercase, regions expanded) -> the ``_PERMITTED`` pattern that documents
    its protocol/ports (None: any protocol and port, the configured extra tags)."""
    out: dict[str, str | None] = {}
    for pattern in _PERMITTED:
        if "<region>" in pattern:
            for r in regions:
                out[pattern.replace("<region>", r)] = pattern
        else:
            out[pattern] = pattern
    for extra in extra_tags:
        if "<region>" in extra:
            for r in regions:
                out.setdefault(extra.lower().replace("<region>", r), None)
        else:
            out.setdefault(extra.lower(), None)
    return MappingProxyType(out)


def _required_flows(region: str, curated: bool, secured_monitor: bool = False, storage_smb: bool = False,
                    hbi: bool = False) -> tuple[engine.Flow, ...]:
    """The required outbound flows of a guarded subnet in ``region`` (baseline "Required
    outbound flows"); ``hbi``: a workspace with a compute on the subnet is high business impact."""
    flows = [("AzureActiveDirectory", "tcp", 80), ("AzureActiveDirectory", "tcp", 443),
             ("AzureMachineLearning", "tcp", 443), ("AzureMachineLearning", "tcp", 8787),
             ("AzureMachineLearning", "tcp", 18881), ("AzureMachineLearning", "udp", 5831),
             (f"BatchNodeManagement.{region}", "tcp", 443), ("AzureResourceManager", "tcp", 443),
             (f"Storage.{region}", "tcp", 443), ("VirtualNetwork", "tcp", 443)]
    if not secured_monitor:
        flows.append(("AzureMonitor", "tcp", 443))
    if curated:
        flows += [(f"MicrosoftContainerRegistry.{region}", "tcp", 443), ("AzureFrontDoor.FirstParty", "tcp", 443)]
    if hbi:
        flows.append((f"AzureKeyVault.{region}", "tcp", 443))
    if storage_smb:
        flows.append((f"Storage.{region}", "tcp", 445))
    return tuple(engine.Flow(protocol, port, tag) for tag, protocol, port in flows)


def _hbi(ctx: Context, g: GuardedSubnet) -> bool:
    """Does a workspace with a compute on the subnet have ``hbiWorkspace: true``?"""
    for c in g.computes:
        w = ctx.picture.workspace_of(c)
        if w is not None and w.hbi_workspace:
            return True
    return False


def _offending_destination(dest: str, d: str, permitted: Mapping[str, object]) -> bool:
    """Can ``dest`` (``d`` lowercased and stripped) receive data?"""
    if d in engine.GENERIC_INTERNET:
        return True
    if engine.as_network(dest) is not None:
        return engine.is_public(dest)
    return d not in permitted


def _outbound_verdict(facts: RuleFacts, permitted: Mapping[str, str | None]) -> tuple[tuple[str, ...], ...]:
    """An outbound Allow rule's (destinations that can receive data (EXF-NSG-02), permitted
    destinations it opens wider than documented (EXF-NSG-04)), for the permitted tags of
    :func:`_permitted_for`."""
    pairs = facts.dest_pairs
    bad = tuple(d for d, low in pairs if _offending_destination(d, low, permitted))
    wide = tuple(d for d, low in pairs
                 if low in permitted and _too_wide_for(facts.protocol, facts.dest_ports, permitted[low]))
    return bad, wide


def _internet_sources(source_prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """The sources of an inbound Allow rule that are the internet or public addresses (EXF-NSG-05)."""
    return tuple(s for s in source_prefixes if s.strip().lower() in engine.GENERIC_INTERNET or engine.is_public(s))


def _internet_bound(dest: str) -> bool:
    """A destination the NSG must let reach a firewall or appliance (``*``, ``Internet``,
    ``0.0.0.0/0``, a public prefix): not an NSG-02 leak where the firewall controls egress."""
    return dest.strip().lower() in engine.GENERIC_INTERNET or engine.is_public(dest)


_ACCESS_OF = itemgetter(0)  # of a decision: (access, deciding rule)


def _rule_path(name: str, *rest: str) -> tuple:
    return (*_RULES_PATH, Sel("name", name), "properties", *rest)


def _tagged(rule: SecurityRule, rule_id: str) -> str:
    tag = f"[exfilguard {rule_id}]"
    return rule.description if rule.description.startswith(tag) else f"{tag} {rule.description}".strip()


def _too_wide_for(protocol: str, dest_ports: tuple[PortRange, ...], pattern: str | None) -> bool:
    """Does a rule allow more protocols or ports than the tag's ``_PERMITTED`` pattern documents?"""
    spec = _PERMITTED[pattern] if pattern is not None else None
    if spec is None:
        return False
    for proto in (engine.PROTOCOLS if protocol == "*" else (protocol,)):
        ports = spec.get(proto, spec.get("*"))
        if ports is None:
            return True
        for pr in dest_ports:
            if pr.lo == pr.hi:  # the usual single port: no range to walk
                if pr.lo not in ports:
                    return True
            elif pr.hi - pr.lo > 64 or any(p not in ports for p in range(pr.lo, pr.hi + 1)):
                return True
    return False


def composed_body(nsg: Nsg) -> dict:
    """The NSG's body with its custom rules inline, as ARM's GET returns it."""
    body = dict(nsg.raw)
    props = dict(body.get("properties") or {})
    props["securityRules"] = [dict(r.raw) if r.raw else {"name": r.name} for r in nsg.rules]
    body["properties"] = props
    return body


def _after(nsg: Nsg, edits: Sequence[Edit]) -> Nsg:
    """The NSG as ``edits`` would leave it: what ``parse_nsg`` makes of the edited body.

    The edits change custom rules only, so the default rules are kept, and so is every
    custom rule whose JSON came through unchanged (the same JSON parses to the same rule)."""
    if all(tuple(e.path[:2]) == _RULES_PATH for e in edits):
        # The usual case: every edit is inside securityRules, so only the rules an edit reaches
        # into need copying (not the other rules, nor the default rules and subnet references
        # the rest of the body carries): composed_body() without its copy of every rule.
        body = dict(nsg.raw)
        props = dict(body.get("properties") or {})
        body["properties"] = props
        rules = _copy_selected(
            [r.raw if type(r.raw) is dict else dict(r.raw) if r.raw else {"name": r.name} for r in nsg.rules], edits)
        props["securityRules"] = rules
        _apply_in_rules(body, rules, edits)
    else:
        body = apply_edits(composed_body(nsg), edits)
    unchanged = {r.name: r for r in nsg.rules}
    rules = []
    for raw in (body.get("properties") or {}).get("securityRules") or ():
        name = raw.get("name") if isinstance(raw, dict) else None
        old = unchanged.get(name) if isinstance(name, str) else None
        rules.append(old if old is not None and (raw is old.raw or old.raw == raw) else parse_rule(raw, nsg.id))
    # Nsg(...) rather than dataclasses.replace(): the same view, built without replace()'s field walk.
    return Nsg(id=nsg.id, type=nsg.type, name=nsg.name, location=nsg.location, tags=nsg.tags, etag=nsg.etag,
               raw=body, rules=tuple(rules), default_rules=nsg.default_rules)


def _after_outbound(nsg: Nsg, edits: Sequence[Edit]) -> tuple[SecurityRule, ...]:
    """``_after(nsg, edits).ordered("outbound")``: the outbound rules, in evaluation order, of
    the NSG as ``edits`` would leave it.

    The fixes a drifted NSG usually gets are upserts of whole rules into securityRules (the
    deny rule, allow rules for required flows). What such an edit does to the rule list is
    known without a body: it replaces the rule whose name it matches (the same match
    ``apply_edit`` makes, :func:`upsert_position`) or appends, and the new rule is
    ``parse_rule`` of the upserted JSON, as it would be of its copy in the edited body. Any
    other edit takes :func:`_after`."""
    if not all(e.op == "upsert" and e.path == _RULES_PATH and type(e.value) is dict for e in edits):
        return _after(nsg, edits).ordered("outbound")
    rules = list(nsg.rules)
    items = [r.raw if r.raw else {"name": r.name} for r in rules]  # what apply_edit would match against
    for e in edits:
        rule = parse_rule(e.value, nsg.id)
        i = upsert_position(items, e)
        if i is None:
            rules.append(rule)
            items.append(e.value)
        else:
            rules[i] = rule
            items[i] = e.value
    return ordered_rules(rules, nsg.default_rules, "outbound")


def _copy_selected(rules: list, edits: Sequence[Edit]) -> list:
    """A copy of the securityRules list that ``edits`` (all inside it) may change in place:
    every rule an edit's selector matches is a deep copy, the others are shared, since edits
    to the list itself (upsert, add, remove) only replace, append or drop whole elements.

    Linear in rules plus edits: selectors by rule name (the only ones the NSG rules make) are
    looked up in a set of lowercase names; any other selector, or a rule whose name is an ID
    (which :func:`selects` compares as an ID), is matched as ``selects`` does."""
    names: set[str] = set()
    others = []
    for e in edits:
        if len(e.path) > len(_RULES_PATH):
            sel = e.path[len(_RULES_PATH)]
            if not isinstance(sel, Sel):
                return copy_json(rules)
            if sel.field == "name" and type(sel.value) is str and not sel.value.startswith("/"):
                names.add(sel.value.lower())
            else:
                others.append(sel)
    if not names and not others:  # list-level edits only (an added rule): no element is changed in place
        return list(rules)
    out = []
    for r in rules:
        name = r.get("name") if type(r) is dict else None
        hit = (type(name) is str and (name.lower() in names if not name.startswith("/") else
                                      any(selects(Sel("name", n), r) for n in names))) or (
            bool(others) and any(selects(s, r) for s in others))
        out.append(copy_json(r) if hit else r)
    return out


def _apply_in_rules(body: dict, rules: list, edits: Sequence[Edit]) -> None:
    """``apply_edit(body, e)`` for each of ``edits``, all inside securityRules (``rules``, the
    body's list, its selected rules already copied): the rule a name selector picks is found
    through an index of first positions by lowercase name, not by a walk of the list per edit
    (a large drifted NSG plans an edit per offending rule). An edit of the list itself
    (an upsert) rebuilds the index when the next selector needs it."""
    index: dict[str, int] | None = None
    n = len(_RULES_PATH)
    for e in edits:
        sel = e.path[n] if len(e.path) > n + 1 else None
        if (type(sel) is not Sel or sel.field != "name" or type(sel.value) is not str
                or sel.value.startswith("/")):
            apply_edit(body, e)
            if len(e.path) == n:
                index = None  # the list itself changed
            continue
        if index is None:
            index = _first_by_name(rules)
            if index is None:  # a rule named like an ID: as apply_edit does, one walk per edit
                apply_edit(body, e)
                continue
        i = index.get(sel.value.lower())
        if i is None:
            raise EditError(f"{'/'.join(map(str, e.path[:n + 1]))}: no element {sel}")
        apply_edit(rules[i], Edit(e.op, e.path[n + 1:], e.value, e.key, e.before))


def _first_by_name(rules: list) -> dict[str, int] | None:
    """Lowercase name -> position of the first rule of that name (what :func:`selects` picks);
    None when a name starts with ``/`` (compared as a resource ID, not lowercased)."""
    index: dict[str, int] = {}
    for i, r in enumerate(rules):
        name = r.get("name") if type(r) is dict else None
        if type(name) is str:
            if name.startswith("/"):
                return None
            index.setdefault(name.lower(), i)
    return index


def evaluate(ctx: Context) -> Iterator[Finding]:
    for k in ctx.picture.guarded_nsg_keys():
        yield from _evaluate_nsg(ctx, ctx.picture.nsgs[k], ctx.picture.subnets_of_nsg(k))


@dataclass(slots=True)
class _Deny:
    """EXF-NSG-01 on one NSG: the subnets it leaks from and the deny rule its fix adds."""

    leaks: list[str] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    priority: int | None = None
    name: str | None = None
    own: str = ""  # why NSG-01 is manual when ExfilGuard's deny rule is already there


@dataclass(slots=True)
class _Allows:
    """EXF-NSG-02, 04 and 05 on one NSG: what its Allow rules open and the edits that close it."""

    nsg02_items: list[str] = field(default_factory=list)
    nsg02_edits: list[Edit] = field(default_factory=list)
    nsg04_items: list[str] = field(default_factory=list)
    nsg05_items: list[str] = field(default_factory=list)
    nsg05_edits: list[Edit] = field(default_factory=list)


def _evaluate_nsg(ctx: Context, nsg: Nsg, subnets: list[GuardedSubnet]) -> Iterator[Finding]:
    permitted = _permitted_for(tuple(sorted({r for g in subnets for r in g.regions})),
                               tuple(ctx.config.extra_service_tags))
    # Fail closed on rules that do not read (baseline "Scope"): the leak rules (NSG-01, 02, 05)
    # read an unreadable Allow as matching everything, NSG-03 reads an unreadable Deny so; and
    # nothing is written to such an NSG (``writable``), so no planned state is worked out.
    writable = not nsg.unreadable
    leak_views = unreadable_views(nsg, "leak") if not writable else ()
    outbound = ordered_rules((*nsg.rules, *leak_views), nsg.default_rules, "outbound")
    block_outbound = outbound if writable else ordered_rules(
        (*nsg.rules, *unreadable_views(nsg, "block")), nsg.default_rules, "outbound")
    # NSG-01 and NSG-02's internet destinations are waived when every subnet's internet traffic
    # goes to a firewall, another appliance or nowhere (egress.py).
    as_written = nsg_judged_as_written(ctx.picture, subnets)
    deny = _deny_plan(ctx, nsg, subnets, outbound, writable) if as_written else _Deny()
    allows = _allow_findings(nsg, (*nsg.rules, *leak_views), permitted, as_written)

    # EXF-NSG-03, on the current state and on the state the other fixes would leave.
    pending = [*deny.edits, *allows.nsg02_edits, *allows.nsg05_edits] if writable else []
    blocked_now, allow_edits, no_room = _required_flow_fixes(
        ctx, nsg, subnets, block_outbound, pending, deny.priority, deny.name)
    # The invariant of every NSG write: each required flow stays Allowed. When an Allow a fix
    # needs finds no free priority, no outbound fix is written (NSG-01, 02 and 03 are manual).
    safe = writable and not no_room
    manual = (_unreadable_summary(nsg) if not writable else
              f"alert: no free priority left for the Allow rule(s) that keep {', '.join(no_room)} open; "
              "fix by hand" if no_room else "")
    if deny.leaks:
        yield _nsg01_finding(nsg, deny, allow_edits["EXF-NSG-01"], safe, manual)
    if allows.nsg02_items:
        yield NSG_02.finding(
            nsg.id, NSG, "outbound Allow to risky destinations: " + "; ".join(allows.nsg02_items),
            edits=[*allows.nsg02_edits, *allow_edits["EXF-NSG-02"]], items=allows.nsg02_items, fixable=safe,
            fix_summary=f"deny or narrow {len(allows.nsg02_items)} rule(s)" if safe else manual)
    if blocked_now:
        edits = allow_edits["EXF-NSG-03"]
        yield NSG_03.finding(
            nsg.id, NSG, "required flows denied: " + "; ".join(dict.fromkeys(blocked_now)),
            edits=edits, fixable=safe, items=blocked_now,
            fix_summary=f"add {len(edits)} allow rule(s) for required flows" if safe else manual)
    if allows.nsg04_items:
        yield NSG_04.finding(
            nsg.id, NSG, "Allow rules wider than the documented ports: " + "; ".join(allows.nsg04_items),
            items=allows.nsg04_items)
    if allows.nsg05_items:
        yield NSG_05.finding(
            nsg.id, NSG, "inbound Allow from the internet: " + "; ".join(allows.nsg05_items),
            edits=allows.nsg05_edits, items=allows.nsg05_items, fixable=writable,
            fix_summary=f"set {len(allows.nsg05_items)} inbound rule(s) to Deny" if writable else manual)


def _deny_plan(ctx: Context, nsg: Nsg, subnets: list[GuardedSubnet], outbound: Sequence[SecurityRule],
               writable: bool) -> _Deny:
    """EXF-NSG-01: the guarded subnets whose internet traffic leaks, and the deny rule that ends it.

    ExfilGuard's own deny rule already there (an earlier fix that did not end the leak, e.g. an
    Allow before it left by an exempt NSG-02): adding another would move the deny one priority
    down at every evaluation, a write each time, and end nothing; the leak is the earlier
    Allow's, which a person must decide on. A rule of another shape that happens to bear the
    name is never replaced: the deny rule takes a name of its own."""
    out = _Deny()
    for g in subnets:
        leaking, why = engine.internet_leak(outbound, g.subnet.address_prefixes if g.subnet else ())
        if leaking:
            out.leaks.append(f"subnet {g.id.rsplit('/', 1)[-1]}: {why}")
    if not out.leaks or not writable:
        return out
    own = next((r for r in nsg.rules if _is_own_deny(r)), None)
    if own is not None:
        out.own = (f"alert: {own.name} (priority {own.priority}) already denies the internet; an Allow "
                   "before it (exempt, or its rule in audit mode) still lets traffic out")
        return out
    out.priority = engine.free_priority({r.priority for r in nsg.rules}, ctx.config.deny_priority)
    if out.priority is not None:
        out.name = _free_name(nsg, DENY_RULE_NAME)
        out.edits.append(Edit("upsert", _RULES_PATH, {"name": out.name, "properties": {
            "description": "Deny outbound internet traffic (ExfilGuard EXF-NSG-01)",
            "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*",
            "sourceAddressPrefix": "*", "destinationAddressPrefix": "Internet",
            "access": "Deny", "priority": out.priority, "direction": "Outbound"}}))
    return out


def _nsg01_finding(nsg: Nsg, deny: _Deny, allows: list[Edit], safe: bool, manual: str) -> Finding:
    fixable = deny.priority is not None and safe
    summary = (f"add rule {deny.name} at priority {deny.priority}"
               + (f" and {len(allows)} allow rule(s) for required flows" if allows else "")) if fixable else (
        manual or deny.own or "alert: no free priority at or below the configured deny priority")
    return NSG_01.finding(nsg.id, NSG, "; ".join(deny.leaks), edits=[*deny.edits, *allows], fixable=fixable,
                          fix_summary=summary)


def _allow_findings(nsg: Nsg, rules: Iterable[SecurityRule], permitted: Mapping[str, str | None],
                    as_written: bool) -> _Allows:
    """EXF-NSG-02 and 04 (outbound Allow rules) and EXF-NSG-05 (inbound ones)."""
    out = _Allows()
    for rule in rules:
        if rule.access != "allow":
            continue
        if rule.direction == "outbound":
            _judge_outbound(rule, permitted, as_written, out)
            continue
        bad = _internet_sources(rule.source_prefixes)
        if bad:
            out.nsg05_items.append(f"{rule.name} ({rule.priority}) <- {', '.join(bad)}{_unread_note(rule)}")
            out.nsg05_edits += [Edit("set", _rule_path(rule.name, "access"), "Deny", before="Allow"),
                                Edit("set", _rule_path(rule.name, "description"), _tagged(rule, "EXF-NSG-05"),
                                     before=rule.description)]
    return out


def _judge_outbound(rule: SecurityRule, permitted: Mapping[str, str | None], as_written: bool,
                    out: _Allows) -> None:
    """One outbound Allow rule: risky destinations (EXF-NSG-02), denied or narrowed, and
    permitted ones opened wider than documented (EXF-NSG-04)."""
    bad, wide = _outbound_verdict(rule.facts, permitted)
    if bad and not as_written:
        bad = tuple(d for d in bad if not _internet_bound(d))
    if bad:
        out.nsg02_items.append(f"{rule.name} ({rule.priority}) -> {', '.join(bad)}{_unread_note(rule)}")
        plural = (rule.raw.get("properties") or {}).get("destinationAddressPrefixes") or []
        if len(bad) < len(rule.dest_prefixes) and plural:
            out.nsg02_edits.extend(Edit("remove", _rule_path(rule.name, "destinationAddressPrefixes"), d)
                                   for d in bad)
        else:
            out.nsg02_edits.append(Edit("set", _rule_path(rule.name, "access"), "Deny", before="Allow"))
        out.nsg02_edits.append(Edit("set", _rule_path(rule.name, "description"), _tagged(rule, "EXF-NSG-02"),
                                    before=rule.description))
    if wide and rule.raw is not _UNREAD:
        ports = ",".join(str(p) for p in rule.dest_ports)
        out.nsg04_items.append(f"{rule.name} ({rule.priority}) -> {', '.join(wide)} on "
                               f"{rule.protocol.upper()}/{ports}")


def _required_flow_fixes(ctx: Context, nsg: Nsg, subnets: list[GuardedSubnet], outbound: Sequence[SecurityRule],
                         pending: list[Edit], deny_priority: int | None, deny_name: str | None
                         ) -> tuple[list[str], dict[str, list[Edit]], list[str]]:
    """EXF-NSG-03: (the required flows blocked now, the Allow rules each fix needs by rule ID,
    the flows whose Allow finds no free priority).

    Each required flow of each guarded subnet is decided on the NSG as it is (``outbound``)
    and as the ``pending`` edits of the other fixes would leave it. A flow denied in the planned
    state gets an Allow, carried by the fix that denies it (NSG-03 when it is denied today, else
    the NSG-01 deny rule or the NSG-02 change that would deny it), so applying that fix never
    breaks Azure ML. Flows are grouped per (destination tag, protocol, carrying fix): one rule
    lists the group's ports, at the nearest free priority above the first rule that denies any
    of them; nothing before that rule matches those flows, so the new Allow decides them."""
    after_outbound = _after_outbound(nsg, pending) if pending else outbound
    blocked_now: list[str] = []
    # (tag lowercase, protocol, fix) -> (tag, ports, ceiling): the Allow a group of flows needs
    needs: dict[tuple[str, str, str], tuple[str, set[int], int]] = {}
    cfg = ctx.config
    for g in subnets:
        prefixes = g.subnet.address_prefixes if g.subnet else ()
        hbi = _hbi(ctx, g) if g.computes else False
        for region in g.regions:
            flows = _required_flows(region, cfg.curated_environments, cfg.secured_monitor, cfg.storage_smb, hbi)
            nows = engine.decide_all(outbound, flows, prefixes)
            if not pending and "deny" not in map(_ACCESS_OF, nows):
                continue  # the usual NSG: every required flow allowed now, and no fix to check
            laters = engine.decide_all(after_outbound, flows, prefixes) if pending else nows
            for flow, now, later in zip(flows, nows, laters, strict=True):
                _need_allow(flow, now, later, deny_name, blocked_now, needs)
    taken = {r.priority for r in nsg.rules}
    if deny_priority is not None:
        taken.add(deny_priority)
    allow_edits, no_room = _allow_rules(nsg, needs, taken)
    return blocked_now, allow_edits, no_room


_Decision = tuple[str, SecurityRule | None]


def _need_allow(flow: engine.Flow, now: _Decision, later: _Decision, deny_name: str | None,
                blocked_now: list[str], needs: dict[tuple[str, str, str], tuple[str, set[int], int]]) -> None:
    """Note a required flow denied now (``blocked_now``) and, when the planned state denies it,
    the Allow it needs (``needs``): below the rule that denies it, carried by the fix that does."""
    (now_access, now_rule), (later_access, later_rule) = now, later
    if now_access == "deny":
        blocked_now.append(f"{flow.label()} blocked by {now_rule.name if now_rule else 'no rule'}")
    if later_access != "deny":
        return
    owner = "EXF-NSG-03" if now_access == "deny" else (
        "EXF-NSG-01" if later_rule is not None and later_rule.name == deny_name else "EXF-NSG-02")
    ceiling = min((later_rule.priority if later_rule else 4097) - 1, 4096)
    key = (flow.tag.lower() if flow.tag else "", flow.protocol or "", owner)
    need = needs.get(key)
    if need is None:
        needs[key] = (flow.tag or "", {flow.port} if flow.port is not None else set(), ceiling)
        return
    if flow.port is not None:
        need[1].add(flow.port)
    if ceiling < need[2]:
        needs[key] = (need[0], need[1], ceiling)


def _allow_rules(nsg: Nsg, needs: dict[tuple[str, str, str], tuple[str, set[int], int]], taken: set[int]
                 ) -> tuple[dict[str, list[Edit]], list[str]]:
    """The Allow rule each group of flows needs, by the fix that carries it, and the groups that
    find no free priority (``taken``: the priorities in use, the planned ones joining them)."""
    allow_edits: dict[str, list[Edit]] = {"EXF-NSG-01": [], "EXF-NSG-02": [], "EXF-NSG-03": []}
    no_room: list[str] = []
    names = {r.name.lower() for r in nsg.rules}  # planned names join them: no rule is ever replaced
    for (_, protocol, owner), (tag, ports, ceiling) in needs.items():
        listed = sorted(ports)
        label = f"{tag} {protocol.upper()}/{','.join(map(str, listed))}"
        prio = engine.free_priority(taken, ceiling)
        if prio is None:
            no_room.append(label)
            continue
        taken.add(prio)
        name = _free_name(nsg, f"exfilguard-allow-{tag.lower().replace('.', '-')}-{protocol}-"
                               f"{'_'.join(map(str, listed))}", names)
        port_fields = {"destinationPortRange": str(listed[0])} if len(listed) == 1 else {
            "destinationPortRanges": [str(p) for p in listed]}
        allow_edits[owner].append(Edit("upsert", _RULES_PATH, {"name": name, "properties": {
            "description": f"Allow {label} for Azure Machine Learning (ExfilGuard {owner})",
            "protocol": protocol.capitalize(), "sourcePortRange": "*", **port_fields,
            "sourceAddressPrefix": "VirtualNetwork", "destinationAddressPrefix": tag,
            "access": "Allow", "priority": prio, "direction": "Outbound"}}))
    return allow_edits, no_room


def _is_own_deny(rule: SecurityRule) -> bool:
    """The rule EXF-NSG-01's fix writes: by name and shape (outbound Deny of the internet on every
    protocol and port, from anywhere)."""
    return (rule.name.lower() == DENY_RULE_NAME and rule.direction == "outbound" and rule.access == "deny"
            and rule.protocol == "*" and rule.dest_ports == ALL_PORTS and rule.source_prefixes == ("*",)
            and tuple(p.lower() for p in rule.dest_prefixes) == ("internet",))


def _free_name(nsg: Nsg, name: str, used: set[str] | None = None) -> str:
    """``name``, or ``name-2``, ``name-3``... when a rule of the NSG has it (``used``: the
    NSG's rule names lowercase, with those planned so far, which the chosen name joins): an
    added rule never replaces an existing one."""
    if used is None:
        used = {r.name.lower() for r in nsg.rules}
    out, n = name, 1
    while out.lower() in used:
        n += 1
        out = f"{name}-{n}"
    used.add(out.lower())
    return out


_UNREAD: Mapping = MappingProxyType({})  # the raw JSON of the views of unreadable rules


def unreadable_views(nsg: Nsg, reading: str) -> tuple[SecurityRule, ...]:
    """The NSG's unreadable rules as rules the engine can order and match, read the way that
    could produce the finding (baseline "Scope"). ``reading`` "leak" (NSG-01, 02, 05): an
    unreadable Allow (or a rule whose access does not read) matches every protocol, port,
    source and destination, in its direction (both when that does not read), and an unreadable
    Deny matches nothing; "block" (NSG-03): an outbound unreadable Deny (or unknown access)
    matches every flow, an unreadable Allow none. An unreadable priority comes first (0)."""
    out = []
    for u in nsg.unreadable:
        access = "allow" if reading == "leak" else "deny"
        if u.access not in (None, access):
            continue
        directions = ("outbound",) if reading == "block" else ((u.direction,) if u.direction else
                                                               ("inbound", "outbound"))
        for d in directions:
            if u.direction not in (None, d):
                continue
            out.append(SecurityRule(u.id, RULE, u.name, None, MappingProxyType({}), None, _UNREAD, nsg.id, d, access,
                                    u.priority if u.priority is not None else 0, "*", ("*",), ("*",), ALL_PORTS,
                                    False, False, f"unreadable: {u.reason}", False))
    return tuple(out)


def _unread_note(rule: SecurityRule) -> str:
    """What a finding's item adds about a rule that does not read (nothing for the others)."""
    return f" (the rule cannot be read, so it counts as matching everything: {rule.description[12:]})" \
        if rule.raw is _UNREAD else ""


def _unreadable_summary(nsg: Nsg) -> str:
    names = ", ".join(u.name for u in nsg.unreadable)
    return (f"manual: the NSG holds security rule(s) ExfilGuard cannot read ({names}); correct them, then the "
            "fix can be written")
