"""Measurements through the real Function app: ``function_app.app.get_functions()``, the ARM
emulator on loopback and Azurite for state, exactly as ``tests/app/test_function_events.py``
drives them.

- ``arm_requests_per_event``: for each event kind, a drift that needs a fix, one event, and
  the emulator's request log counted (reads, writes, polls apart). The egress kinds (route
  tables, firewalls, policies, rule collection groups) are alert-only: their drift is alerted
  and nothing is written.
- ``remediation_overhead``: the emulator injects 50 ms per request and 1 s per long-running
  operation; the wall time from delivering a securityRules/write drift event to the fix
  confirmed (ExfilGuard's poll saw the write's operation succeed), divided by the latency
  the emulator injected on the critical path. The time to the handler's return (audit rows
  and alert written after the fix) is kept too.

Every measurement gets fresh state tables (its own prefix), primed the way production is:
the nightly sweep has filled the compute index.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests import factory
from tests.armemu import ArmEmulator

from .common import (
    COMPUTE_WEU,
    NSG_EUS,
    NSG_WEU,
    RULE_WRITE,
    SEP_WEU,
    SUBNET_WEU,
    VNET_WEU,
    app_settings,
    delivered,
    median,
    resource_event,
    sample,
    use_settings,
)

COMPLIANT = "compliant-subscription.json"
# The compliant sample's firewalled spoke (North Europe): route table -> hub Azure Firewall -> policy.
RG_NEU = "rg-ml-neu"
TABLE_NEU = factory.route_table_id(RG_NEU, "rt-ml-northeurope")
FIREWALL_NEU = factory.firewall_id(RG_NEU, "fw-hub-northeurope")
POLICY_NEU = factory.policy_id(RG_NEU, "fwp-ml-northeurope")
RCG_NEU = f"{POLICY_NEU}/ruleCollectionGroups/rcg-ml"
DENY_RULES = ("deny-internet-out", "exfilguard-deny-internet-outbound")
ML_ALIAS = "/services/Azure/MachineLearning"

LATENCY_S = 0.05
LRO_S = 1.0


@functools.cache
def functions() -> dict[str, Callable[..., Any]]:
    """The user functions by name, indexed once per process as the host does."""
    import function_app

    return {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}


def prime(emu: ArmEmulator) -> None:
    """Production's starting point: a sweep has filled the compute index, the state tables exist.
    The timer sweep runs on a compliant subscription, so it writes nothing to ARM."""
    from azure.functions.timer import TimerRequest

    from exfilguard.flows.runtime import services

    emu.reset_log()
    functions()["scheduled_sweep"](TimerRequest(past_due=False))
    if emu.writes():
        raise RuntimeError(f"bench: the priming sweep wrote {[w.path for w in emu.writes()]}: not compliant")
    services().loop_guard().status(NSG_WEU)  # opens (creates) the loop-guard table, as any earlier fix did
    state = services().state
    for name in ("coalesce", "intents"):  # and the tables any earlier event created
        state.table(f"{state.prefix}{name}")
    emu.reset_log()


def original(resource_id: str) -> dict:
    """A resource of the compliant sample, as loaded into the emulator."""
    return copy.deepcopy(next(r for r in sample(COMPLIANT) if r["id"].lower() == resource_id.lower()))


# ---------------------------------------------------------------------------------- drifts
def drift_nsg(emu: ArmEmulator, nsg_id: str = NSG_WEU) -> None:
    """Someone removes the deny-internet rule (EXF-NSG-01)."""
    body = original(nsg_id)
    body["properties"]["securityRules"] = [r for r in body["properties"]["securityRules"]
                                           if r["name"] not in DENY_RULES]
    emu.set_body(nsg_id, body)


def nsg_fixed(emu: ArmEmulator, nsg_id: str = NSG_WEU) -> bool:
    body = emu.get_body(nsg_id) or {}
    return any(r.get("name") in DENY_RULES for r in body.get("properties", {}).get("securityRules", []))


def drift_subnet_endpoint(emu: ArmEmulator) -> None:
    """Someone drops the subnet's Microsoft.Storage service endpoint (EXF-SN-01)."""
    body = original(VNET_WEU)
    for s in body["properties"]["subnets"]:
        if s["id"].lower() == SUBNET_WEU.lower():
            s["properties"]["serviceEndpoints"] = []
    emu.set_body(VNET_WEU, body)


def subnet_fixed(emu: ArmEmulator) -> bool:
    body = emu.get_body(SUBNET_WEU) or {}
    return any(e.get("service") == "Microsoft.Storage" for e in body.get("properties", {}).get("serviceEndpoints", []))


def drift_sep_alias(emu: ArmEmulator) -> None:
    """Someone removes the Azure ML alias from the service endpoint policy (EXF-SEP-01)."""
    body = original(SEP_WEU)
    defs = body["properties"]["serviceEndpointPolicyDefinitions"]
    defs[:] = [d for d in defs if ML_ALIAS not in d["properties"].get("serviceResources", [])]
    emu.set_body(SEP_WEU, body)


def sep_fixed(emu: ArmEmulator) -> bool:
    body = emu.get_body(SEP_WEU) or {}
    return any(ML_ALIAS in d.get("properties", {}).get("serviceResources", [])
               for d in body.get("properties", {}).get("serviceEndpointPolicyDefinitions", []))


def drift_route(emu: ArmEmulator) -> None:
    """Someone points the spoke's default route at an appliance that is not the hub firewall (EXF-RT-01)."""
    body = original(TABLE_NEU)
    body["properties"]["routes"][0]["properties"]["nextHopIpAddress"] = "10.77.0.4"
    emu.set_body(TABLE_NEU, body)


def drift_policy(emu: ArmEmulator) -> None:
    """Someone adds a quickstart's "Allow Storage and AzureFrontDoor.Frontend" collection (EXF-FW-01)."""
    body = original(RCG_NEU)
    body["properties"]["ruleCollections"].append(factory.collection("quickstart-allow", 400, "Allow", [
        factory.net_rule("azure-services", ["Storage", "AzureFrontDoor.Frontend"], ["443"], ["*"])]))
    emu.set_body(RCG_NEU, body)


def alerted_only(emu: ArmEmulator) -> bool:
    """Alert-only rules: the drift is reported, and ExfilGuard writes nothing."""
    return not emu.writes()


@dataclass(frozen=True)
class Scenario:
    kind: str  # the operation's short name, the key in results.json
    operation: str
    resource_uri: str
    drift: Callable[[ArmEmulator], None]
    fixed: Callable[[ArmEmulator], bool]
    what: str


SCENARIOS = (
    Scenario("securityRules/write", RULE_WRITE, f"{NSG_WEU}/securityRules/deny-internet-out", drift_nsg, nsg_fixed,
             "deny-internet rule removed from the NSG (EXF-NSG-01); event for that rule"),
    Scenario("subnets/write", "Microsoft.Network/virtualNetworks/subnets/write", SUBNET_WEU, drift_subnet_endpoint,
             subnet_fixed, "storage service endpoint removed from the subnet (EXF-SN-01); event for the subnet"),
    Scenario("virtualNetworks/write", "Microsoft.Network/virtualNetworks/write", VNET_WEU, drift_subnet_endpoint,
             subnet_fixed, "the same drift, reported as a write of the VNet"),
    Scenario("computes/write", "Microsoft.MachineLearningServices/workspaces/computes/write", COMPUTE_WEU, drift_nsg,
             nsg_fixed, "deny-internet rule removed from the NSG of the compute's subnet; event for the compute"),
    Scenario("serviceEndpointPolicies/write", "Microsoft.Network/serviceEndpointPolicies/write", SEP_WEU,
             drift_sep_alias, sep_fixed, "Azure ML alias removed from the policy (EXF-SEP-01); event for the policy"),
    Scenario("routeTables/write", "Microsoft.Network/routeTables/write", TABLE_NEU, drift_route, alerted_only,
             "default route sent to an unknown appliance (EXF-RT-01, alert-only); event for the route table"),
    Scenario("routes/write", "Microsoft.Network/routeTables/routes/write", f"{TABLE_NEU}/routes/default-to-firewall",
             drift_route, alerted_only, "the same drift, reported as a write of the route"),
    Scenario("azureFirewalls/write", "Microsoft.Network/azureFirewalls/write", FIREWALL_NEU, drift_policy,
             alerted_only, "leaky collection in the firewall's policy (EXF-FW-01, alert-only); event for the firewall"),
    Scenario("firewallPolicies/write", "Microsoft.Network/firewallPolicies/write", POLICY_NEU, drift_policy,
             alerted_only, "the same drift; event for the policy"),
    Scenario("ruleCollectionGroups/write", "Microsoft.Network/firewallPolicies/ruleCollectionGroups/write", RCG_NEU,
             drift_policy, alerted_only, "the same drift; event for the rule collection group"),
)
ALERT_ONLY_KINDS = frozenset(sc.kind for sc in SCENARIOS if sc.fixed is alerted_only)


def _deliver(event: dict) -> None:
    functions()["on_resource_event"](delivered(event))


# ---------------------------------------------------------------------------------- measures
def arm_requests_per_event(storage: str) -> dict[str, dict[str, int]]:
    """Reads and writes (polls apart) the emulator served for one drift event of each kind."""
    out: dict[str, dict[str, int]] = {}
    with ArmEmulator(sample(COMPLIANT)) as emu:
        for sc in SCENARIOS:
            # Each kind on fresh state: the loop guard and the index start as production's do.
            use_settings(app_settings(emu.url, storage))
            for target in (NSG_WEU, VNET_WEU, SEP_WEU, TABLE_NEU, RCG_NEU):
                emu.set_body(target, original(target))
            prime(emu)
            sc.drift(emu)
            emu.reset_log()
            _deliver(resource_event(sc.operation, sc.resource_uri))
            if not sc.fixed(emu):
                raise RuntimeError(f"bench: {sc.kind}: the drift was not fixed ({sc.what})")
            out[sc.kind] = {"reads": emu.count(kind="read"), "writes": emu.count(kind="write"),
                            "polls": emu.count(kind="poll")}
    return out


@dataclass(frozen=True)
class Remediation:
    wall_s: float  # delivery -> ExfilGuard's write confirmed (its poll saw the operation succeed)
    handler_s: float  # delivery -> the handler returned (audit rows and alerts written too)
    reads: int
    writes: int
    polls: int
    lros: int

    @property
    def injected_s(self) -> float:
        """Latency the emulator injected on the critical path: every read and write, and every
        long-running operation. Polls overlap the operation they wait for (the poll that sees
        it finished can be sent before it finishes), so they are not on the critical path."""
        return (self.reads + self.writes) * LATENCY_S + self.lros * LRO_S

    @property
    def injected_all_s(self) -> float:
        """Every request the emulator served, polls included, plus the operations."""
        return (self.reads + self.writes + self.polls) * LATENCY_S + self.lros * LRO_S

    @property
    def ratio(self) -> float:
        return self.wall_s / self.injected_s

    @property
    def handler_ratio(self) -> float:
        return self.handler_s / self.injected_s

    def to_json(self) -> dict[str, Any]:
        return {"wall_s": round(self.wall_s, 4), "handler_s": round(self.handler_s, 4), "reads": self.reads,
                "writes": self.writes, "polls": self.polls,
                "lros": self.lros, "injected_s": round(self.injected_s, 3), "ratio": round(self.ratio, 4),
                "ratio_all_requests": round(self.wall_s / self.injected_all_s, 4)}


@contextlib.contextmanager
def _write_confirmations() -> Iterator[list[float]]:
    """When each ``ArmClient.put`` returns (the write landed and its operation was seen to
    succeed): a timestamp taken around the product's method, which is otherwise untouched."""
    from exfilguard.adapters.arm import ArmClient

    seen: list[float] = []
    put = ArmClient.put

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = put(self, *args, **kwargs)
        seen.append(time.perf_counter())
        return result

    ArmClient.put = timed  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        ArmClient.put = put  # type: ignore[method-assign]


def remediation_overhead(storage: str, runs: int = 3) -> list[Remediation]:
    """One securityRules/write drift per run, alternating the two NSGs of the sample."""
    out = []
    with ArmEmulator(sample(COMPLIANT)) as emu:
        for i in range(runs):
            nsg = (NSG_WEU, NSG_EUS)[i % 2]
            use_settings(app_settings(emu.url, storage))
            emu.latency, emu.lro_delay = 0.0, 0.0
            for target in (NSG_WEU, NSG_EUS):
                emu.set_body(target, original(target))
            prime(emu)
            drift_nsg(emu, nsg)
            emu.latency, emu.lro_delay = LATENCY_S, LRO_S
            emu.reset_log()
            event = resource_event(RULE_WRITE, f"{nsg}/securityRules/deny-internet-out")
            with _write_confirmations() as confirmed:
                started = time.perf_counter()
                _deliver(event)
                handler = time.perf_counter() - started
            if len(confirmed) != 1:
                raise RuntimeError(f"bench: expected one confirmed write, saw {len(confirmed)}")
            emu.latency, emu.lro_delay = 0.0, 0.0
            if not nsg_fixed(emu, nsg):
                raise RuntimeError("bench: remediation run did not fix the NSG")
            writes = emu.records(kind="write")
            lros = sum(1 for w in writes if 200 <= w.status < 300)  # the emulator runs every write as an LRO
            out.append(Remediation(confirmed[0] - started, handler, emu.count(kind="read"), len(writes),
                                   emu.count(kind="poll"), lros))
    return out


def summarise_remediation(runs: list[Remediation]) -> Remediation:
    """The run with the median ratio."""
    ordered = sorted(runs, key=lambda r: r.ratio)
    return ordered[len(ordered) // 2]


__all__ = ["ALERT_ONLY_KINDS", "SCENARIOS", "Remediation", "arm_requests_per_event", "median", "remediation_overhead",
           "summarise_remediation"]
