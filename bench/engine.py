"""Events per second from event to decision, with the resource source in memory.

One decision is what the Event Grid handler does before it writes anything: parse the event
(as the Python worker delivers it, ``func.EventGridEvent``), route it, check it is not
ExfilGuard's own write, read the closure through :class:`exfilguard.flows.closure.ClosureReader`,
build the picture, evaluate around the changed resource and plan the fixes. The ARM client
and the Table-storage compute index are replaced by in-memory stand-ins with the same
methods, so what is measured is ExfilGuard's own work: no HTTP, no writes, no audit rows.

The subscription is generated (``bench.generate``) and every body is shaped as ARM's GET
returns it (the emulator's store composes them: default security rules, ``properties.subnets``
back-references, etags). Every event is a securityRules/write on one of its NSGs, all of
them guarded, every fifth one drifted (a fix is planned). Each round of events reads a fresh
copy of the bodies, and in it every event's NSG is as ARM returns it after the rule write the
event reports: new etags on the NSG and on all its rules, the written rule's content changed
(:class:`MemoryArm`).

Run alone: ``python -m bench.engine [--resources N] [--seconds S]`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from exfilguard.adapters import eventgrid as events
from exfilguard.adapters.state import IndexedCompute, IndexedSubnet
from exfilguard.app.sweep import index_rows
from exfilguard.core import engine, ids
from exfilguard.core.config import Config
from exfilguard.core.picture import build
from exfilguard.flows.closure import ClosureReader

from . import generate
from .common import OWN_CLIENT_ID, OWN_OBJECT_ID, RULE_WRITE, SUB, delivered, resource_event


class MemoryArm:
    """The read side of :class:`exfilguard.adapters.arm.ArmClient` over ARM bodies in memory.

    Two things keep it honest about what a real read returns. A real client hands out freshly
    decoded JSON on every GET, so nothing the product keeps can be the very object it reads
    next: the bodies are held in ``copies`` independently decoded copies and each round of
    events reads the next one (:meth:`next_round`). And the write an event reports has changed
    its resource: in each copy every NSG is as ARM returns it after a write of the rule the
    event names (``written``, NSG ID -> rule name): a new etag on the NSG and on every rule
    nested in it (ARM stamps the NSG's new etag on all of them) and that rule's content
    changed (its description names the copy). So nothing parsed from the previous round can
    stand for the changed NSG or the written rule; only the rules whose content is unchanged
    compare equal to what was read before, as they would in Azure."""

    def __init__(self, bodies: Iterable[dict[str, Any]], copies: int = 3,
                 written: dict[str, str] | None = None) -> None:
        bodies = list(bodies)
        text = json.dumps(bodies)
        self._copies: list[dict[str, dict[str, Any]]] = []
        for c in range(max(1, copies)):
            copy = {ids.key(b["id"]): b for b in json.loads(text)}
            for nsg_id, rule_name in (written or {}).items():
                _after_rule_write(copy[ids.key(nsg_id)], rule_name, c)
            self._copies.append(copy)
        self._round = 0
        self._by_key = self._copies[0]
        self._children: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._types: dict[str, list[dict[str, Any]]] = {}
        for b in bodies:
            parsed = ids.parse(b["id"])
            if parsed.parent is not None:
                self._children.setdefault((parsed.parent.key, parsed.types[-1].lower()), []).append(b)
            else:
                self._types.setdefault(ids.type_key(parsed.type), []).append(b)
        self.gets = 0  # GET requests answered

    def next_round(self) -> None:
        """Read the next copy: the subscription after the next write of every event's rule."""
        self._round = (self._round + 1) % len(self._copies)
        self._by_key = self._copies[self._round]

    def get(self, resource_id: str) -> dict[str, Any] | None:
        self.gets += 1
        return self._by_key.get(ids.key(resource_id))

    def list_type(self, resource_type: str) -> Iterator[dict[str, Any]]:
        self.gets += 1
        yield from self._types.get(ids.type_key(resource_type), ())

    def list_children(self, parent_id: str, child_type: str) -> Iterator[dict[str, Any]]:
        self.gets += 1
        yield from self._children.get((ids.key(parent_id), child_type.lower()), ())

    def close(self) -> None:
        pass


def _after_rule_write(nsg: dict[str, Any], rule_name: str, n: int) -> None:
    """``nsg`` (in place) as ARM returns it after write ``n`` of its rule ``rule_name``."""
    etag = f'W/"bench-write-{n}-{nsg["name"]}"'
    nsg["etag"] = etag
    props = nsg["properties"]
    for rule in (*props.get("securityRules", ()), *props.get("defaultSecurityRules", ())):
        rule["etag"] = etag
        if rule["name"] == rule_name:
            rule["properties"]["description"] = f"changed by bench write {n}"


class MemoryIndex:
    """The compute-index methods of :class:`exfilguard.adapters.state.State` over dicts, filled the way a
    sweep fills the Table (``exfilguard.app.sweep.index_rows``)."""

    def __init__(self, computes: Iterable[IndexedCompute], subnets: Iterable[IndexedSubnet]) -> None:
        self._computes = {ids.key(c.compute_id): c for c in computes}
        self._subnets = {ids.key(s.subnet_id): s for s in subnets}
        self._by_subnet: dict[str, list[IndexedCompute]] | None = None

    def _subnet_map(self) -> dict[str, list[IndexedCompute]]:
        if self._by_subnet is None:
            by: dict[str, list[IndexedCompute]] = {}
            for c in self._computes.values():
                by.setdefault(ids.key(c.subnet_id or ""), []).append(c)
            for v in by.values():
                v.sort(key=lambda c: ids.key(c.compute_id))
            self._by_subnet = by
        return self._by_subnet

    def index_populated(self) -> bool:
        return True

    def mark_index_populated(self) -> None:
        pass

    def computes_on(self, subnet_ids: Iterable[str]) -> dict[str, list[IndexedCompute]]:
        by = self._subnet_map()
        return {k: list(by.get(k, ())) for k in map(ids.key, subnet_ids)}

    def computes(self) -> list[IndexedCompute]:
        return list(self._computes.values())

    def subnets_attached_to(self, nsg_or_sep_id: str) -> list[IndexedSubnet]:
        k = ids.key(nsg_or_sep_id)
        return [s for s in self._subnets.values()
                if ids.key(s.nsg_id or "-") == k or any(ids.key(x) == k for x in s.sep_ids)]

    def index_compute(self, compute_id: str, workspace_id: str, subnet_id: str | None) -> None:
        self._computes[ids.key(compute_id)] = IndexedCompute(compute_id, workspace_id, subnet_id or "")
        self._by_subnet = None

    def forget_compute(self, compute_id: str) -> None:
        self._computes.pop(ids.key(compute_id), None)
        self._by_subnet = None

    def note_subnet(self, subnet_id: str, nsg_id: str | None, sep_ids: Iterable[str]) -> None:
        self._subnets[ids.key(subnet_id)] = IndexedSubnet(subnet_id, nsg_id or "", tuple(sep_ids))


def decide(raw: Any, client: MemoryArm, index: MemoryIndex, cfg: Config) -> list[Any]:
    """One event to its decision: the planned fixes (empty when the NSG is compliant)."""
    event = events.parse(raw)
    routed = events.route(event, SUB)
    if not isinstance(routed, events.Route):
        raise RuntimeError(f"bench: event dropped: {routed.reason}")
    if events.is_own_write(event, OWN_CLIENT_ID, OWN_OBJECT_ID):
        raise RuntimeError("bench: event taken for ExfilGuard's own write")
    reader = ClosureReader(client, index, cfg)  # type: ignore[arg-type]
    read = reader.around(routed.reread_type, str(routed.reread), deleted=routed.deleted)
    picture = build(read.body_list(), cfg.guarded_subnets, source="arm")
    evaluation = engine.evaluate(picture, cfg, only=read.affected.values())
    return engine.plan(evaluation.findings, cfg)


def arm_bodies(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The resources as ARM's GET returns them (composed by the ARM emulator's store): etags,
    default security rules, the subnets an NSG or policy is attached to."""
    from tests.armemu import ArmEmulator

    emu = ArmEmulator(resources)  # not started: only its store composes the bodies
    out = []
    for r in resources:
        body = emu.get_body(r["id"])
        assert body is not None
        out.append(json.loads(json.dumps(body)))
    return out


def rule_events(bodies: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
    """The NSGs and, per NSG, a securityRules/write event on its first rule (as delivered)."""
    nsgs = [b for b in bodies if b["type"] == "Microsoft.Network/networkSecurityGroups"]
    return nsgs, [delivered(resource_event(RULE_WRITE, f"{n['id']}/securityRules/"
                                                      f"{n['properties']['securityRules'][0]['name']}"))
                  for n in nsgs]


def measure(resources: int = 1000, seconds: float = 2.0, batches: int = 3) -> dict[str, Any]:
    bodies = arm_bodies(generate.subscription(resources))
    cfg = Config(mode="remediate")
    index = MemoryIndex(*index_rows(build(bodies)))
    nsgs, events_ = rule_events(bodies)
    client = MemoryArm(bodies, written={n["id"]: n["properties"]["securityRules"][0]["name"] for n in nsgs})
    planned = sum(1 for r in events_ if decide(r, client, index, cfg))  # warm-up, and what the events decide
    reads_per_event = client.gets / len(events_)
    rates = []
    for _ in range(batches):
        n = 0
        started = time.perf_counter()
        deadline = started + seconds / batches
        while True:
            client.next_round()
            for raw in events_:
                decide(raw, client, index, cfg)
            n += len(events_)
            now = time.perf_counter()
            if now >= deadline:
                break
        rates.append(n / (now - started))
    rates.sort()
    return {"events_per_s": rates[len(rates) // 2], "batches_per_s": rates, "resources": len(bodies),
            "nsgs": len(nsgs), "events_with_a_fix": planned, "reads_per_event": reads_per_event}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.engine")
    p.add_argument("--resources", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.resources, args.seconds)))


if __name__ == "__main__":
    main()
