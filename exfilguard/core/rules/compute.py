"""ML compute rules: compute sits in a guarded VNet, has no public IP, uses simplified node
communication and no public SSH (seed: "compute instance and cluster ... no public IP",
"created after 2022-12-01")."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from exfilguard.core import types
from exfilguard.core.catalog import RULES as CATALOG
from exfilguard.core.findings import Finding
from exfilguard.core.fixes import Edit
from exfilguard.core.model import COMPUTE, Compute
from exfilguard.core.rules.base import Context

CMP_01 = CATALOG["EXF-CMP-01"]
CMP_02 = CATALOG["EXF-CMP-02"]
CMP_03 = CATALOG["EXF-CMP-03"]
CMP_04 = CATALOG["EXF-CMP-04"]

RULES = (CMP_01, CMP_02, CMP_03, CMP_04)
TARGETS = types.targets([r.id for r in RULES])  # resource types its findings are about

SIMPLIFIED_SINCE = "2022-12-01"


def _quarantine_edits(c: Compute) -> list[Edit]:
    """Stop an instance; scale a cluster to zero nodes. Only when quarantine is configured."""
    if c.compute_type.lower() == "computeinstance":
        if (c.state or "").lower() in ("stopped", "stopping"):
            return []  # already quarantined: stopping again would be a write every sweep
        return [Edit("action", ("stop",))]
    if c.compute_type.lower() == "amlcompute":
        if c.min_node_count == 0:
            return []  # already scaled to zero nodes
        return [Edit("set", ("properties", "properties", "scaleSettings", "minNodeCount"), 0)]
    return []


def created_day(created_on: str) -> str:
    """``createdOn`` as a UTC day (``YYYY-MM-DD``): a timestamp with an offset is converted to
    UTC first (``2022-11-30T20:00:00-05:00`` is 2022-12-01); one without an offset is UTC
    already. Text that is no ISO timestamp keeps its first ten characters, as before."""
    try:
        when = datetime.fromisoformat(created_on.strip())
    except ValueError:
        return created_on[:10]
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.date().isoformat()


def _isolation(ctx: Context, c: Compute) -> str:
    """The managed network isolation of the compute's workspace; a hub-based project that sets
    none runs in its hub's managed network (it inherits the hub's network isolation)."""
    ws = ctx.picture.workspace_of(c)
    if ws is None:
        return "disabled"
    mode = ws.isolation_mode
    if not mode:
        hub = ctx.picture.hub_of(ws)
        mode = hub.isolation_mode if hub is not None else None
    return (mode or "Disabled").lower()


def evaluate(ctx: Context) -> Iterator[Finding]:
    for c in ctx.picture.computes.values():
        if c.is_ml:  # attached computes (Kubernetes, VirtualMachine, Databricks...) are out of scope
            yield from _evaluate_compute(ctx, c)


def _evaluate_compute(ctx: Context, c: Compute) -> Iterator[Finding]:
    if not c.subnet_id:
        managed = _isolation(ctx, c) != "disabled"
        if not managed:
            yield CMP_01.finding(c.id, COMPUTE, f"{c.compute_type or 'compute'} {c.name} has no subnet and its "
                                 "workspace has no managed network")
    public = c.enable_node_public_ip is True or (c.enable_node_public_ip is None and bool(c.public_ip_address))
    if public:
        why = "enableNodePublicIp is true" if c.enable_node_public_ip else \
            f"it has public IP {c.public_ip_address}"
        edits = _quarantine_edits(c) if ctx.config.quarantine else []
        # Quarantine is the only automatic action an alert-only rule may take.
        finding = CMP_02.finding(c.id, COMPUTE, f"{c.compute_type or 'compute'} {c.name}: {why}")
        if edits:
            from dataclasses import replace

            finding = replace(finding, edits=tuple(edits), fix_mode="auto",
                              fix_summary="quarantine: " + ("stop the instance" if edits[0].op == "action"
                                                            else "set the cluster's minimum nodes to 0"))
        yield finding
    day = created_day(c.created_on) if c.created_on else None
    if day and day < SIMPLIFIED_SINCE:
        yield CMP_03.finding(c.id, COMPUTE, f"{c.name} was created on {day} (UTC), before {SIMPLIFIED_SINCE}")
    open_to = [what for what, v in (("SSH", c.ssh_public_access), ("remote login", c.remote_login_public_access))
               if (v or "").lower() == "enabled"]
    if open_to:
        yield CMP_04.finding(c.id, COMPUTE, f"{c.name} allows public {' and '.join(open_to)}")
