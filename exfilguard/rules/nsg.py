"""NSG rules for guarded NSGs: deny the internet, allow only the low-risk service tags Azure
ML needs, keep those narrow, and close inbound from the internet (seed: "Allow inbound and
outbound network traffic", the list of required outbound service tags).

The family is evaluated per NSG in one pass because its fixes interact: the deny rule that
EXF-NSG-01 adds, or an Allow that EXF-NSG-02 turns into a Deny, could block a flow Azure ML
needs. The planned state is therefore checked again, and the Allow rules that keep required
flows working travel with the fix that would otherwise break them, so one write converges.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from types import MappingProxyType

from .. import nsg as engine
from ..catalog import RULES as CATALOG
from ..findings import Finding
from ..fixes import Edit, Sel, apply_edit, apply_edits, copy_json, selects, upsert_position
from ..model import NSG, Nsg, PortRange, RuleFacts, SecurityRule, memo_put, ordered_rules, parse_rule
from ..picture import GuardedSubnet
from .base import Context

NSG_01 = CATALOG["EXF-NSG-01"]
NSG_02 = CATALOG["EXF-NSG-02"]
NSG_03 = CATALOG["EXF-NSG-03"]
NSG_04 = CATALOG["EXF-NSG-04"]
NSG_05 = CATALOG["EXF-NSG-05"]

RULES = (NSG_01, NSG_02, NSG_03, NSG_04, NSG_05)
TARGETS = (NSG,)  # resource types its findings are about

DENY_RULE_NAME = "exfilguard-deny-internet-outbound"
_RULES_PATH = ("properties", "securityRules")

# Documented protocol/ports per permitted tag; None = any protocol/port.
_ANY = None
_TCP443 = MappingProxyType({"tcp": frozenset({443})})
_PERMITTED: dict[str, MappingProxyType | None] = {
    "batchnodemanagement.<region>": MappingProxyType({"*": frozenset({443})}),
    "azuremachinelearning": MappingProxyType({"tcp": frozenset({443, 8787, 18881}), "udp": frozenset({5831})}),
    "storage.<region>": _TCP443,
    "microsoftcontainerregistry.<region>": _TCP443,
    "azurefrontdoor.firstparty": _TCP443,
    "azureactivedirectory": _TCP443,
    "azureresourcemanager": _TCP443,
    "azuremonitor": _TCP443,
    "virtualnetwork": _ANY,
}


@lru_cache(maxsize=256)
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


def required_flows(ctx: Context, region: str) -> list[engine.Flow]:
    return list(_required_flows(region, ctx.config.curated_environments))


@lru_cache(maxsize=256)
def _required_flows(region: str, curated: bool) -> tuple[engine.Flow, ...]:
    tags = [f"BatchNodeManagement.{region}", "AzureMachineLearning", f"Storage.{region}"]
    if curated:
        tags += [f"MicrosoftContainerRegistry.{region}", "AzureFrontDoor.FirstParty"]
    return tuple(engine.Flow("tcp", 443, t) for t in tags)


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
    :func:`_permitted_for`. A pure function of the rule's addresses, protocol and ports, which
    most NSGs of a subscription share, so it is kept with them (``facts.memo``) for the next
    NSG and the next write."""
    known = facts.memo.get(id(permitted))
    if known is not None and known[0] is permitted:
        return known[1]
    pairs = facts.dest_pairs
    bad = tuple(d for d, low in pairs if _offending_destination(d, low, permitted))
    wide = tuple(d for d, low in pairs
                 if low in permitted and _too_wide_for(facts.protocol, facts.dest_ports, permitted[low]))
    memo_put(facts, permitted, (bad, wide))
    return bad, wide


@lru_cache(maxsize=1024)
def _internet_sources(source_prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """The sources of an inbound Allow rule that are the internet or public addresses (EXF-NSG-05)."""
    return tuple(s for s in source_prefixes if s.strip().lower() in engine.GENERIC_INTERNET or engine.is_public(s))


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
        props["securityRules"] = _copy_selected(
            [r.raw if type(r.raw) is dict else dict(r.raw) if r.raw else {"name": r.name} for r in nsg.rules], edits)
        for e in edits:
            apply_edit(body, e)
    else:
        body = apply_edits(composed_body(nsg), edits)
    unchanged = {r.name: r for r in nsg.rules}
    rules = []
    for raw in (body.get("properties") or {}).get("securityRules") or ():
        old = unchanged.get(raw.get("name")) if isinstance(raw, dict) else None
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
    to the list itself (upsert, add, remove) only replace, append or drop whole elements."""
    sels = []
    for e in edits:
        if len(e.path) > len(_RULES_PATH):
            sel = e.path[len(_RULES_PATH)]
            if not isinstance(sel, Sel):
                return copy_json(rules)
            sels.append(sel)
    if not sels:  # list-level edits only (an added rule): no element is changed in place
        return list(rules)
    return [copy_json(r) if any(selects(s, r) for s in sels) else r for r in rules]


def evaluate(ctx: Context) -> Iterator[Finding]:
    for k in ctx.picture.guarded_nsg_keys():
        yield from _evaluate_nsg(ctx, ctx.picture.nsgs[k], ctx.picture.subnets_of_nsg(k))


def _evaluate_nsg(ctx: Context, nsg: Nsg, subnets: list[GuardedSubnet]) -> Iterator[Finding]:
    permitted = _permitted_for(tuple(sorted({r for g in subnets for r in g.regions})),
                               tuple(ctx.config.extra_service_tags))
    pid = id(permitted)
    outbound = nsg.ordered("outbound")
    taken: set[int] | None = None  # priorities in use: worked out when a rule is to be added
    findings: dict[str, Finding] = {}

    # EXF-NSG-01
    leaks = []
    for g in subnets:
        prefixes = g.subnet.address_prefixes if g.subnet else ()
        leaking, why = engine.internet_leak(outbound, prefixes)
        if leaking:
            leaks.append(f"subnet {g.id.rsplit('/', 1)[-1]}: {why}")
    nsg01_edits: list[Edit] = []
    deny_priority = None
    if leaks:
        taken = {r.priority for r in nsg.rules}
        deny_priority = engine.free_priority(taken, ctx.config.deny_priority)
        if deny_priority is not None:
            taken.add(deny_priority)
            nsg01_edits.append(Edit("upsert", _RULES_PATH, {"name": DENY_RULE_NAME, "properties": {
                "description": "Deny outbound internet traffic (ExfilGuard EXF-NSG-01)",
                "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*",
                "sourceAddressPrefix": "*", "destinationAddressPrefix": "Internet",
                "access": "Deny", "priority": deny_priority, "direction": "Outbound"}}))

    # EXF-NSG-02 / 04 / 05
    nsg02_items, nsg02_edits, flipped02 = [], [], set()
    nsg04_items = []
    nsg05_items, nsg05_edits = [], []
    for rule in nsg.rules:
        if rule.access != "allow":
            continue
        if rule.direction == "outbound":
            known = rule.facts.memo.get(pid)  # _outbound_verdict() inline when it is known
            bad, wide = known[1] if known is not None and known[0] is permitted else _outbound_verdict(
                rule.facts, permitted)
            if bad:
                nsg02_items.append(f"{rule.name} ({rule.priority}) -> {', '.join(bad)}")
                plural = (rule.raw.get("properties") or {}).get("destinationAddressPrefixes") or []
                if len(bad) < len(rule.dest_prefixes) and plural:
                    nsg02_edits.extend(Edit("remove", _rule_path(rule.name, "destinationAddressPrefixes"), d)
                                       for d in bad)
                else:
                    nsg02_edits.append(Edit("set", _rule_path(rule.name, "access"), "Deny", before="Allow"))
                    flipped02.add(rule.name.lower())
                nsg02_edits.append(Edit("set", _rule_path(rule.name, "description"), _tagged(rule, "EXF-NSG-02"),
                                        before=rule.description))
            if wide:
                ports = ",".join(str(p) for p in rule.dest_ports)
                nsg04_items.append(f"{rule.name} ({rule.priority}) -> {', '.join(wide)} on "
                                   f"{rule.protocol.upper()}/{ports}")
        else:
            bad = _internet_sources(rule.source_prefixes)
            if bad:
                nsg05_items.append(f"{rule.name} ({rule.priority}) <- {', '.join(bad)}")
                nsg05_edits += [Edit("set", _rule_path(rule.name, "access"), "Deny", before="Allow"),
                                Edit("set", _rule_path(rule.name, "description"), _tagged(rule, "EXF-NSG-05"),
                                     before=rule.description)]

    # EXF-NSG-03, on the current state and on the state the other fixes would leave.
    pending = [*nsg01_edits, *nsg02_edits, *nsg05_edits]
    after_outbound = _after_outbound(nsg, pending) if pending else outbound
    blocked_now: list[str] = []
    allow_edits: dict[str, list[Edit]] = {"EXF-NSG-01": [], "EXF-NSG-02": [], "EXF-NSG-03": []}
    planned: set[str] = set()
    no_room = []
    for g in subnets:
        prefixes = g.subnet.address_prefixes if g.subnet else ()
        for region in g.regions:
            flows = _required_flows(region, ctx.config.curated_environments)
            nows = engine.decide_all(outbound, flows, prefixes)
            if not pending and "deny" not in map(_ACCESS_OF, nows):
                continue  # the usual NSG: every required flow allowed now, and no fix to check
            laters = engine.decide_all(after_outbound, flows, prefixes) if pending else nows
            for flow, (now, now_rule), (later, later_rule) in zip(flows, nows, laters, strict=True):
                if now == "deny":
                    blocked_now.append(f"{flow.label()} blocked by {now_rule.name if now_rule else 'no rule'}")
                if later != "deny" or flow.tag.lower() in planned:
                    continue
                owner = "EXF-NSG-03" if now == "deny" else (
                    "EXF-NSG-01" if later_rule is not None and later_rule.name == DENY_RULE_NAME else "EXF-NSG-02")
                ceiling = (later_rule.priority if later_rule else 4097) - 1
                if taken is None:
                    taken = {r.priority for r in nsg.rules}
                prio = engine.free_priority(taken, min(ceiling, 4096))
                if prio is None:
                    no_room.append(flow.label())
                    continue
                taken.add(prio)
                planned.add(flow.tag.lower())
                name = f"exfilguard-allow-{flow.tag.lower().replace('.', '-')}-tcp-443"
                allow_edits[owner].append(Edit("upsert", _RULES_PATH, {"name": name, "properties": {
                    "description": f"Allow {flow.tag} TCP 443 for Azure Machine Learning (ExfilGuard {owner})",
                    "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "443",
                    "sourceAddressPrefix": "VirtualNetwork", "destinationAddressPrefix": flow.tag,
                    "access": "Allow", "priority": prio, "direction": "Outbound"}}))

    if leaks:
        fixable = deny_priority is not None
        findings["EXF-NSG-01"] = NSG_01.finding(
            nsg.id, NSG, "; ".join(leaks), edits=[*nsg01_edits, *allow_edits["EXF-NSG-01"]], fixable=fixable,
            fix_summary=(f"add rule {DENY_RULE_NAME} at priority {deny_priority}"
                         + (f" and {len(allow_edits['EXF-NSG-01'])} allow rule(s) for required flows"
                            if allow_edits["EXF-NSG-01"] else "")) if fixable else
            "alert: no free priority at or below the configured deny priority")
    if nsg02_items:
        findings["EXF-NSG-02"] = NSG_02.finding(
            nsg.id, NSG, "outbound Allow to risky destinations: " + "; ".join(nsg02_items),
            edits=[*nsg02_edits, *allow_edits["EXF-NSG-02"]], items=nsg02_items,
            fix_summary=f"deny or narrow {len(nsg02_items)} rule(s)")
    if blocked_now:
        edits = allow_edits["EXF-NSG-03"]
        findings["EXF-NSG-03"] = NSG_03.finding(
            nsg.id, NSG, "required flows denied: " + "; ".join(dict.fromkeys(blocked_now)),
            edits=edits, fixable=not no_room, items=blocked_now,
            fix_summary=f"add {len(edits)} allow rule(s) for required flows" if not no_room else
            "alert: no free priority left above the blocking Deny")
    if nsg04_items:
        findings["EXF-NSG-04"] = NSG_04.finding(
            nsg.id, NSG, "Allow rules wider than the documented ports: " + "; ".join(nsg04_items),
            items=nsg04_items)
    if nsg05_items:
        findings["EXF-NSG-05"] = NSG_05.finding(
            nsg.id, NSG, "inbound Allow from the internet: " + "; ".join(nsg05_items), edits=nsg05_edits,
            items=nsg05_items, fix_summary=f"set {len(nsg05_items)} inbound rule(s) to Deny")
    yield from findings.values()
