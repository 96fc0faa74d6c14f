"""The NSG decision engine against docs/semantics.md's semantics, with properties checked by hypothesis."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exfilguard.core import nsg_decisions as engine
from exfilguard.core.model import azure_default_rules, parse_nsg, parse_rule
from tests import factory as f

NSG_ID = f.nsg_id("rg", "n")
SUBNET = ("10.10.1.0/24",)


def rule(name="r", priority=100, **kw):
    return parse_rule(f.rule(name, priority, nsg=NSG_ID, **kw))


def ordered(*rules):
    body = f.nsg("rg", "n", "westeurope", [])
    nsg = parse_nsg(body, body["id"], "microsoft.network/networksecuritygroups")
    return tuple(sorted((*rules, *nsg.default_rules), key=lambda r: (r.priority, r.is_default)))


STORAGE = engine.Flow("tcp", 443, "Storage.westeurope")


def test_defaults_allow_internet_and_engine_says_so():
    leaking, why = engine.internet_leak(ordered(), SUBNET)
    assert leaking and "AllowInternetOutBound" in why
    assert engine.decide(ordered(), STORAGE, SUBNET)[0] == "allow"


def test_missing_default_rules_are_assumed():
    assert [r.priority for r in azure_default_rules(NSG_ID)] == [65000, 65001, 65500, 65000, 65001, 65500]


def _tag_matches(dest: str, tag: str) -> bool:
    """docs/semantics.md: does a rule destination cover service tag ``tag``? ``*`` and
    ``0.0.0.0/0`` cover every tag, ``Internet`` every tag but ``VirtualNetwork``, a tag itself
    and its global form (``Storage`` covers ``Storage.westeurope``)."""
    d, t = dest.strip().lower(), tag.lower()
    if d in ("*", "0.0.0.0/0"):
        return True
    if d == "internet":
        return t != "virtualnetwork"
    return d in (t, t.split(".", 1)[0])


def test_service_tag_matching():
    for dest, tag, want in (
            ("Storage", "Storage.WestEurope", True), ("storage.westeurope", "Storage.WestEurope", True),
            ("Internet", "AzureMachineLearning", True), ("0.0.0.0/0", "Storage.westeurope", True),
            ("Storage.eastus", "Storage.westeurope", False), ("AzureCloud", "Storage.westeurope", False),
            ("VirtualNetwork", "Storage.westeurope", False), ("Internet", "VirtualNetwork", False),
            ("*", "VirtualNetwork", True)):
        assert _tag_matches(dest, tag) == want, (dest, tag)
        assert engine.matches(rule(dest=dest, protocol="Tcp", ports="443"), engine.Flow("tcp", 443, tag), SUBNET) \
            == want, (dest, tag)


def test_plural_fields_and_port_ranges():
    r = rule(access="Deny", dest=["10.0.0.0/8", "Storage"], ports=["80", "400-500"], protocol="Tcp")
    assert engine.decide(ordered(r), STORAGE, SUBNET) == ("deny", r)
    assert engine.decide(ordered(r), engine.Flow("tcp", 501, "Storage.westeurope"), SUBNET)[0] == "allow"
    assert engine.decide(ordered(r), engine.Flow("udp", 443, "Storage.westeurope"), SUBNET)[0] == "allow"


def test_generic_internet_matches_only_wildcards():
    r = rule(access="Allow", dest="52.0.0.0/8", protocol="*", ports="*")
    deny = rule("d", 200, access="Deny", dest="Internet", protocol="*", ports="*")
    assert not engine.internet_leak(ordered(r, deny), SUBNET)[0]


def test_application_security_groups_are_conservative():
    body = f.rule("asg-allow", 100, dest="Internet", protocol="*", ports="*", nsg=NSG_ID)
    body["properties"].pop("sourceAddressPrefix")
    body["properties"]["sourceApplicationSecurityGroups"] = [{"id": "/subscriptions/s/asg"}]
    allow = parse_rule(body)
    assert engine.source_applies(allow, SUBNET)
    body["properties"]["access"] = "Deny"
    assert not engine.source_applies(parse_rule(body), SUBNET)


def test_public_prefixes():
    for p in ("8.8.8.8", "52.0.0.0/8", "2001:db8::/32", "100.128.0.0/16"):
        assert engine.is_public(p), p
    for p in ("10.1.2.3", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.1", "169.254.1.1",
              "fd00::/8", "fe80::1", "::1", "Storage", "*"):
        assert not engine.is_public(p), p


def test_free_priority_walks_down():
    assert engine.free_priority({4096, 4095}, 4096) == 4094
    assert engine.free_priority(set(range(100, 4097)), 4096) is None


# --- properties -------------------------------------------------------------------------------
DESTS = st.sampled_from(["*", "Internet", "0.0.0.0/0", "Storage", "Storage.westeurope", "Storage.eastus",
                         "AzureMachineLearning", "10.0.0.0/8", "52.1.0.0/16", "VirtualNetwork"])
PORTS = st.sampled_from(["*", "443", "80", "400-500", "8787", "0-65535", ["80", "443"], ["1-100", "8787"]])
PROTOS = st.sampled_from(["*", "Tcp", "Udp", "Icmp"])
SOURCES = st.sampled_from(["*", "VirtualNetwork", "10.10.0.0/16", "192.168.0.0/16", "AzureLoadBalancer"])
FLOWS = st.builds(engine.Flow, st.sampled_from(["tcp", "udp", None]), st.sampled_from([443, 80, 8787, None]),
                  st.sampled_from(["Storage.westeurope", "AzureMachineLearning", None]))


@st.composite
def rule_sets(draw):
    n = draw(st.integers(min_value=0, max_value=8))
    priorities = draw(st.lists(st.integers(100, 4096), min_size=n, max_size=n, unique=True))
    return [rule(f"r{i}", p, access=draw(st.sampled_from(["Allow", "Deny"])), dest=draw(DESTS), ports=draw(PORTS),
                 protocol=draw(PROTOS), source=draw(SOURCES)) for i, p in enumerate(priorities)]


@settings(max_examples=150, deadline=None)
@given(rule_sets(), FLOWS, st.randoms(use_true_random=False))
def test_rule_order_in_input_never_changes_a_decision(rules, flow, rnd):
    shuffled = list(rules)
    rnd.shuffle(shuffled)
    assert engine.decide(ordered(*rules), flow, SUBNET)[0] == engine.decide(ordered(*shuffled), flow, SUBNET)[0]
    assert engine.internet_leak(ordered(*rules), SUBNET)[0] == engine.internet_leak(ordered(*shuffled), SUBNET)[0]


@settings(max_examples=150, deadline=None)
@given(rule_sets(), FLOWS, st.sampled_from(["Allow", "Deny"]), DESTS, PORTS, PROTOS)
def test_a_rule_after_the_first_match_changes_nothing(rules, flow, access, dest, ports, proto):
    base = ordered(*rules)
    decision, decider = engine.decide(base, flow, SUBNET)
    if decider is None or decider.is_default:
        return
    later = rule("later", decider.priority + 1 if decider.priority < 4096 else 4096, access=access, dest=dest,
                 ports=ports, protocol=proto)
    if later.priority == decider.priority:
        return
    assert engine.decide(ordered(*rules, later), flow, SUBNET)[0] == decision


@settings(max_examples=100, deadline=None)
@given(rule_sets(), FLOWS)
def test_decision_is_the_first_matching_rule(rules, flow):
    o = ordered(*rules)
    decision, decider = engine.decide(o, flow, SUBNET)
    assert decider is not None  # defaults always end in a catch-all deny
    assert decision == decider.access
    assert engine.matches(decider, flow, SUBNET)
    assert all(not engine.matches(r, flow, SUBNET) for r in o[: o.index(decider)])


def _reference_matches(r, flow, prefixes) -> bool:
    """docs/semantics.md's matching written out from the rule's own fields, without the engine's
    precomputed facts or shortcuts: the oracle for the quick paths of decide()."""
    if flow.tag is None:
        dest = any(d.strip().lower() in ("*", "internet", "0.0.0.0/0") for d in r.dest_prefixes)
    else:
        dest = any(_tag_matches(d, flow.tag) for d in r.dest_prefixes)
    proto = r.protocol == "*" if flow.protocol is None else r.protocol in ("*", flow.protocol)
    if flow.port is None:
        ports = any(p.lo <= 0 and p.hi >= 65535 for p in r.dest_ports)
    else:
        ports = any(p.lo <= flow.port <= p.hi for p in r.dest_ports)
    if r.source_asg:
        source = r.access == "allow"
    else:
        source = False
        for s in r.source_prefixes:
            if s.lower() in ("*", "virtualnetwork"):
                source = True
                break
            net = engine.as_network(s)
            if net is not None and any(engine.as_network(p).subnet_of(net) for p in prefixes
                                       if engine.as_network(p).version == net.version):
                source = True
                break
    return dest and proto and ports and source


@settings(max_examples=300, deadline=None)
@given(rule_sets(), FLOWS, st.sampled_from([SUBNET, ("192.168.5.0/24",)]))
def test_decide_agrees_with_the_rules_written_out(rules, flow, prefixes):
    o = ordered(*rules)
    want = next(((r.access, r) for r in o if _reference_matches(r, flow, prefixes)), ("deny", None))
    assert engine.decide(o, flow, prefixes) == want
    assert [engine.matches(r, flow, prefixes) for r in o] == [_reference_matches(r, flow, prefixes) for r in o]


@settings(max_examples=200, deadline=None)
@given(rule_sets(), st.lists(FLOWS, min_size=1, max_size=6), st.sampled_from([SUBNET, ("192.168.5.0/24",), ()]))
def test_decide_all_is_decide_for_each_flow(rules, flows, prefixes):
    o = ordered(*rules)
    flows = tuple(flows)
    want = [engine.decide(o, flow, prefixes) for flow in flows]
    assert engine.decide_all(o, flows, prefixes) == want
    assert engine.decide_all(o, tuple(reversed(flows)), prefixes) == want[::-1]


def _reference_leak(o, prefixes) -> bool:
    """docs/semantics.md's EXF-NSG-01 written out: an Allow to the internet applies before (at a lower
    priority number than) the first full internet Deny that applies, or no such Deny applies."""
    def internet(r):
        return any(d.strip().lower() in ("*", "internet", "0.0.0.0/0") for d in r.dest_prefixes)

    def full_deny(r):
        return (r.access == "deny" and internet(r) and r.protocol == "*"
                and any(p.lo <= 0 and p.hi >= 65535 for p in r.dest_ports) and engine.source_applies(r, prefixes))

    deny = next((r for r in o if full_deny(r)), None)
    return any(r.access == "allow" and internet(r) and engine.source_applies(r, prefixes)
               and (deny is None or r.priority < deny.priority) for r in o)


@settings(max_examples=300, deadline=None)
@given(rule_sets(), st.sampled_from([SUBNET, ("192.168.5.0/24",), ()]))
def test_internet_leak_agrees_with_the_rule_written_out(rules, prefixes):
    o = ordered(*rules)
    leaking, why = engine.internet_leak(o, prefixes)
    assert leaking == _reference_leak(o, prefixes)
    named = [r.name for r in o if f"{r.name} (" in why]
    assert named, why  # the explanation names the rule that decided it


def test_internet_leak_at_a_full_denys_own_priority_is_no_leak():
    """ARM refuses two rules of one priority and direction, a snapshot may not: an Allow at the
    Deny's own priority is not before it."""
    allow = rule("allow", 300, access="Allow", dest="Internet", protocol="*", ports="*")
    deny = rule("deny", 300, access="Deny", dest="Internet", protocol="*", ports="*")
    assert engine.internet_leak((allow, deny), SUBNET) == (False, "internet traffic is denied by deny (300)")
    earlier = rule("earlier", 200, access="Allow", dest="0.0.0.0/0", protocol="Tcp", ports="443")
    assert engine.internet_leak((earlier, allow, deny), SUBNET) == (
        True, "rule earlier (priority 200) allows internet traffic before deny rule deny (300)")
    assert engine.internet_leak((earlier,), SUBNET) == (True, "rule earlier (priority 200) allows internet traffic")


def test_replaced_rule_gets_the_facts_of_its_new_fields():
    from dataclasses import replace

    r = rule(dest="Storage", protocol="Tcp", ports="443")
    wider = replace(r, dest_prefixes=("Internet",), protocol="*")
    assert (wider.facts.to_internet, wider.facts.protocol) == (True, "*")
    assert (r.facts.to_internet, r.facts.protocol) == (False, "tcp")


def test_rule_facts_are_those_of_the_rules_own_fields():
    from exfilguard.core.model import rule_facts

    for body in (f.rule("a", 100, dest=["Internet", " Storage.WestEurope"], ports=["80", "0-65535"], nsg=NSG_ID),
                 f.rule("b", 110, dest="AzureMachineLearning", source="10.0.0.0/8", nsg=NSG_ID),
                 f.rule("c", 120, dest="0.0.0.0/0", source=["10.1.0.0/16", "VirtualNetwork"], nsg=NSG_ID)):
        r = parse_rule(body)
        facts = r.facts
        assert facts == rule_facts(r.source_prefixes, r.dest_prefixes, r.dest_ports, r.source_asg, r.protocol)
        assert (facts.protocol, facts.dest_ports) == (r.protocol, r.dest_ports)
        assert facts.dest_lows == tuple(d.strip().lower() for d in r.dest_prefixes)
        assert facts.dest_pairs == tuple(zip(r.dest_prefixes, facts.dest_lows, strict=True))
        assert facts.to_internet == any(d in ("*", "internet", "0.0.0.0/0") for d in facts.dest_lows)
        assert facts.all_ports == any(p.covers_all() for p in r.dest_ports)
    a, b, c = (parse_rule(x) for x in (f.rule("a", 100, dest="Internet", ports=["80", "0-65535"], nsg=NSG_ID),
                                       f.rule("b", 110, source="10.0.0.0/8", nsg=NSG_ID),
                                       f.rule("c", 120, source=["10.1.0.0/16", "VirtualNetwork"], nsg=NSG_ID)))
    assert (a.facts.to_internet, a.facts.all_ports, a.facts.from_vnet) == (True, True, True)
    assert (b.facts.to_internet, b.facts.all_ports, b.facts.from_vnet) == (True, False, False)
    assert c.facts.from_vnet


@settings(max_examples=100, deadline=None)
@given(rule_sets())
def test_full_deny_at_highest_precedence_stops_every_leak(rules):
    deny = rule("deny-all", 99, access="Deny", dest="Internet", protocol="*", ports="*")
    assert not engine.internet_leak(ordered(*rules, deny), SUBNET)[0]
    leaking_without = engine.internet_leak(ordered(*rules), SUBNET)[0]
    has_full_deny = any(r.access == "deny" and r.protocol == "*" and str(r.dest_ports[0]) == "*"
                        and r.dest_prefixes[0] in ("*", "Internet", "0.0.0.0/0") for r in rules)
    if not has_full_deny:
        assert leaking_without  # defaults alone always let internet traffic out


def test_planned_state_copies_only_the_rules_edits_reach_into():
    """EXF-NSG-03 checks the state the other fixes would leave: the edited body is what applying
    the edits to a full copy gives, and the NSG read from ARM is left untouched."""
    import copy

    from exfilguard.core.fixes import Edit, Sel, apply_edits
    from exfilguard.core.rules import nsg as nsg_rules

    body = f.nsg("rg", "n", "westeurope", [
        f.rule("open", 100, dest="Internet"), f.rule("twice", 110, dest="Storage"), f.rule("twice", 120),
        f.rule("kept", 130, dest="AzureMachineLearning")])
    nsg = parse_nsg(body, body["id"], "microsoft.network/networksecuritygroups")
    before = copy.deepcopy(body)
    edits = [Edit("remove", ("properties", "securityRules"), {"name": "twice"}),
             Edit("set", ("properties", "securityRules", Sel("name", "open"), "properties", "access"), "Deny"),
             Edit("set", ("properties", "securityRules", Sel("name", "TWICE"), "properties", "access"), "Deny"),
             Edit("upsert", ("properties", "securityRules"), f.rule("new", 90))]
    after = nsg_rules._after(nsg, [edits[1], edits[3]])
    assert after.raw == apply_edits(nsg_rules.composed_body(nsg), [edits[1], edits[3]])
    assert [r.access for r in after.rules] == ["deny", "allow", "allow", "allow", "allow"]
    assert after.rules[3] is nsg.rules[3]  # unchanged JSON: the same rule
    assert nsg_rules._copy_selected([{"name": "a"}], [edits[0], edits[2]]) == [{"name": "a"}]
    shared = nsg_rules._copy_selected(body["properties"]["securityRules"], edits)
    assert [x is y for x, y in zip(shared, body["properties"]["securityRules"], strict=True)] == [
        False, False, False, True]
    assert body == before


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["open", "OPEN", "kept", "exfilguard-deny-internet-outbound", "new"]),
                          st.integers(100, 4096), st.sampled_from(["Allow", "Deny"]),
                          st.sampled_from(["Internet", "Storage", "AzureMachineLearning", "*"])),
                min_size=1, max_size=4),
       st.booleans())
def test_planned_outbound_rules_from_upserts_match_the_edited_body(upserts, with_a_set):
    """EXF-NSG-03's planned state worked out from whole-rule upserts alone (no body copied) is the
    planned state of the edited body: same rules, same order, for names that replace a rule
    (in another case too), names that are new and an upsert of a name another upsert added;
    with a set among the edits the body is always edited."""
    from exfilguard.core.fixes import Edit, Sel
    from exfilguard.core.rules import nsg as nsg_rules

    body = f.nsg("rg", "n", "westeurope", [
        f.rule("open", 100, dest="Internet"), f.rule("kept", 130, dest="AzureMachineLearning"),
        f.rule("inbound", 140, direction="Inbound")])
    nsg = parse_nsg(body, body["id"], "microsoft.network/networksecuritygroups")
    edits = [Edit("upsert", ("properties", "securityRules"),
                  {"name": name, "properties": f.rule(name, prio, access=access, dest=dest)["properties"]})
             for name, prio, access, dest in upserts]
    if with_a_set:
        edits.append(Edit("set", ("properties", "securityRules", Sel("name", "kept"), "properties", "access"),
                          "Deny"))
    want = nsg_rules._after(nsg, edits).ordered("outbound")
    got = nsg_rules._after_outbound(nsg, edits)
    assert got == want
    assert [r.name for r in got] == [r.name for r in want]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(100, 70000), st.sampled_from(["Inbound", "Outbound"])), max_size=8),
       st.booleans())
def test_ordered_is_by_priority_with_custom_rules_first_among_equals(specs, odd_defaults):
    """Nsg.ordered merges custom and default rules; whatever their priorities (a snapshot may
    hold custom rules above 4096 or defaults Azure never writes), the order is (priority,
    custom before default), stable among equals."""
    body = f.nsg("rg", "n", "westeurope", [f.rule(f"r{i}", p, direction=d) for i, (p, d) in enumerate(specs)])
    if odd_defaults:  # default rules among the custom rules' priorities, each direction's in reverse order
        from exfilguard.core.model import _AZURE_DEFAULTS

        body["properties"]["defaultSecurityRules"] = [
            {"name": name, "id": f"{body['id']}/defaultSecurityRules/{name}", "etag": "e",
             "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
             "properties": {"protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*",
                            "sourceAddressPrefix": src, "destinationAddressPrefix": dst, "access": access,
                            "priority": 4000 - 100 * (i % 3) if i % 2 else 100, "direction": direction}}
            for i, (name, _, direction, access, _, src, dst) in enumerate(_AZURE_DEFAULTS)]
    nsg = parse_nsg(body, body["id"], "microsoft.network/networksecuritygroups")
    for direction in ("inbound", "outbound"):
        want = sorted((r for r in (*nsg.rules, *nsg.default_rules) if r.direction == direction),
                      key=lambda r: (r.priority, r.is_default))
        assert list(nsg.ordered(direction)) == want
        assert [r.name for r in nsg.ordered(direction)] == [r.name for r in want]
    if odd_defaults:
        assert sorted(r.priority for r in nsg.default_rules) == [100, 100, 100, 3800, 3900, 4000]
