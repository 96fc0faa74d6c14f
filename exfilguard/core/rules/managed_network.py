"""Managed-network outbound rules other than FQDN ones: a ``ServiceTag`` rule to a tag that can
receive data, or wider than the tag needs (EXF-WS-06), and a ``PrivateEndpoint`` rule to a
storage account that is not the workspace's (EXF-WS-07). Both are the same exfiltration
paths an NSG rule or a service endpoint policy entry would open, reached through the
workspace's managed network instead (seed: "managed network isolation").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from exfilguard.core import ids, types
from exfilguard.core.catalog import RULES as CATALOG
from exfilguard.core.findings import Finding
from exfilguard.core.model import STORAGE, WORKSPACE, PortRange, Workspace
from exfilguard.core.rules.base import Context
from exfilguard.core.rules.nsg import _permitted_for, _too_wide_for

WS_06 = CATALOG["EXF-WS-06"]
WS_07 = CATALOG["EXF-WS-07"]

RULES = (WS_06, WS_07)
TARGETS = types.targets([r.id for r in RULES])  # resource types its findings are about


def _user_defined(ws: Workspace, kind: str) -> list:
    return [r for r in ws.outbound_rules if r.type.lower() == kind and r.category.lower() == "userdefined"]


def _ports(text: Any) -> tuple[PortRange, ...] | None:
    """``portRanges`` (``"443"``, ``"80,443"``, ``"1000-2000"``, ``"*"``; absent = all)."""
    if text in (None, ""):
        return (PortRange(0, 65535),)
    if not isinstance(text, str):
        return None
    out = []
    for part in text.split(","):
        t = part.strip()
        if t in ("*", ""):
            out.append(PortRange(0, 65535))
            continue
        lo, _, hi = t.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            return None
        out.append(PortRange(a, b))
    return tuple(out)


def _service_tag_problem(dest: Any, permitted: Any) -> str | None:
    if not isinstance(dest, dict) or not isinstance(dest.get("serviceTag"), str):
        return f"unreadable destination {dest!r}"
    tag = dest["serviceTag"].strip()
    if (dest.get("action") or "Allow").lower() != "allow":
        return None
    if tag.lower() not in permitted:
        return f"service tag {tag} is outside the permitted set"
    protocol = str(dest.get("protocol") or "*").strip().lower()
    protocol = "*" if protocol in ("any", "*") else protocol
    ports = _ports(dest.get("portRanges"))
    if ports is None:
        return f"{tag} with unreadable ports {dest.get('portRanges')!r}"
    if _too_wide_for(protocol, ports, permitted[tag.lower()]):
        return f"{tag} on {protocol.upper()}/{dest.get('portRanges') or '*'} is wider than documented"
    return None


def evaluate(ctx: Context) -> Iterator[Finding]:
    for ws in ctx.picture.workspaces.values():
        if (ws.isolation_mode or "").lower() != "allowonlyapprovedoutbound":
            continue
        if str(ws.raw.get("kind") or "").lower() == "project":
            continue  # an AI Foundry project inherits its hub's managed network: judged on the hub only
        region = ws.region
        permitted = _permitted_for((region,) if region else (), tuple(ctx.config.extra_service_tags))
        bad = []
        for r in _user_defined(ws, "servicetag"):
            problem = _service_tag_problem(r.destination, permitted)
            if problem:
                bad.append(f"{r.name}: {problem}")
        if bad:
            yield WS_06.finding(ws.id, WORKSPACE, f"workspace {ws.name} managed network: " + "; ".join(bad),
                                items=bad, fix_summary="alert: in the workspace's managed network, remove the "
                                "listed ServiceTag rules or narrow each to a permitted tag on its documented ports")
        default = ids.key(ws.storage_account_id) if ws.storage_account_id else None
        foreign = []
        for r in _user_defined(ws, "privateendpoint"):
            dest = r.destination if isinstance(r.destination, dict) else {}
            target = dest.get("serviceResourceId")
            if not isinstance(target, str) or (ids.type_of(target) or "").lower() != STORAGE:
                continue
            if ids.key(target) == default or ctx.config.storage_allowed(target):
                continue
            foreign.append(f"{r.name} -> {target}")
        if foreign:
            yield WS_07.finding(ws.id, WORKSPACE, f"workspace {ws.name} managed network has private endpoints to "
                                "other storage accounts: " + "; ".join(foreign), items=foreign,
                                fix_summary="alert: remove the listed PrivateEndpoint rules, or add the account "
                                "to the storage allow-list if it is approved")
