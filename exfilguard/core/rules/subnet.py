"""Subnet rules: every guarded subnet routes storage through a service endpoint with a
service endpoint policy, behind an NSG (seed: "Enable storage endpoint for the subnet",
"Create a service endpoint policy")."""

from __future__ import annotations

from collections.abc import Iterator

from exfilguard.core import types
from exfilguard.core.catalog import RULES as CATALOG
from exfilguard.core.findings import Finding
from exfilguard.core.fixes import Edit
from exfilguard.core.model import SUBNET
from exfilguard.core.rules.base import Context

SN_01 = CATALOG["EXF-SN-01"]
SN_02 = CATALOG["EXF-SN-02"]
SN_03 = CATALOG["EXF-SN-03"]

RULES = (SN_01, SN_02, SN_03)
TARGETS = types.targets([r.id for r in RULES])  # resource types its findings are about

_STORAGE_SERVICES = ("microsoft.storage", "microsoft.storage.global")
_PATH = ("properties",)


def evaluate(ctx: Context) -> Iterator[Finding]:
    cfg = ctx.config
    for g in ctx.picture.guarded_subnets.values():
        s = g.subnet
        if s is None:
            continue
        if not any(se.service.lower() in _STORAGE_SERVICES for se in s.service_endpoints):
            entry = {"service": "Microsoft.Storage", "locations": list(g.regions) or ["*"]}
            yield SN_01.finding(
                s.id, SUBNET, f"subnet {s.name} has no Microsoft.Storage service endpoint "
                f"(has: {', '.join(se.service for se in s.service_endpoints) or 'none'})",
                edits=[Edit("upsert", (*_PATH, "serviceEndpoints"), entry, key="service")],
                fix_summary=f"add service endpoint Microsoft.Storage for {', '.join(entry['locations'])}")
        if not s.sep_ids:
            sep = cfg.attach_sep_id
            yield SN_02.finding(
                s.id, SUBNET, f"subnet {s.name} has no service endpoint policy attached",
                edits=[Edit("add", (*_PATH, "serviceEndpointPolicies"), {"id": sep})] if sep else (),
                fix_summary=f"attach service endpoint policy {sep}" if sep else
                "alert: set EXFILGUARD_ATTACH_SEP_ID to let ExfilGuard attach a policy",
                fixable=sep is not None)
        if not s.nsg_id:
            nsg = cfg.attach_nsg_id
            yield SN_03.finding(
                s.id, SUBNET, f"subnet {s.name} has no network security group attached",
                edits=[Edit("set", (*_PATH, "networkSecurityGroup"), {"id": nsg})] if nsg else (),
                fix_summary=f"attach network security group {nsg}" if nsg else
                "alert: set EXFILGUARD_ATTACH_NSG_ID to let ExfilGuard attach an NSG",
                fixable=nsg is not None)
