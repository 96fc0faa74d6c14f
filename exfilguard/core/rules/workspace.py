"""Workspace rules: private endpoints for the workspace and its storage, no public network
access, and a managed network that only reaches approved destinations (seed: "workspace
... private endpoint", "managed network isolation")."""

from __future__ import annotations

from collections.abc import Iterator

from exfilguard.core import ids
from exfilguard.core.catalog import RULES as CATALOG
from exfilguard.core.findings import Finding
from exfilguard.core.fixes import Edit
from exfilguard.core.model import STORAGE, WORKSPACE, Workspace
from exfilguard.core.rules.base import Context

WS_01 = CATALOG["EXF-WS-01"]
WS_02 = CATALOG["EXF-WS-02"]
WS_03 = CATALOG["EXF-WS-03"]
WS_04 = CATALOG["EXF-WS-04"]
WS_05 = CATALOG["EXF-WS-05"]

WS_02_NO_ENDPOINT = ("add an approved private endpoint to the workspace first, then set publicNetworkAccess: "
                     "Disabled (disabling it without one locks every user out of the studio and the SDK)")

RULES = (WS_01, WS_02, WS_03, WS_04, WS_05)
TARGETS = (WORKSPACE, STORAGE)  # resource types its findings are about


def _fqdn_allowed(host: str, allow: list[str]) -> bool:
    """Whether every name ``host`` stands for is covered by an allowed pattern. ``*.a.b`` covers
    each name ending in ``.a.b``, so also a wildcard inside it (``*.westeurope.a.b``); ``*``
    covers everything."""
    h = host.strip().lower().rstrip(".")
    for pattern in allow:
        p = pattern.strip().lower()
        if p in (h, "*"):
            return True
        if p.startswith("*.") and h.endswith(p[1:]) and len(h) > len(p) - 1:
            return True
    return False


def evaluate(ctx: Context) -> Iterator[Finding]:
    seen_storage: set[str] = set()
    for ws in ctx.picture.workspaces.values():
        # A hub-based project inherits its hub's network isolation: the hub is judged, not it.
        if not ws.is_hub_project:
            yield from _evaluate_workspace(ctx, ws)
        storage = ctx.picture.default_storage(ws)
        if storage:
            k = ids.key(storage)
            acct = ctx.picture.storage_accounts.get(k)
            if acct is not None and k not in seen_storage:
                seen_storage.add(k)
                if not any(s.lower() == "approved" for s in acct.private_endpoint_statuses):
                    yield WS_03.finding(acct.id, STORAGE, f"storage account {acct.name} (default storage of "
                                        f"workspace {ws.name}) has no approved private endpoint connection")


def _evaluate_workspace(ctx: Context, ws: Workspace) -> Iterator[Finding]:
    mode = (ws.isolation_mode or "").lower()
    approved = any(s.lower() == "approved" for s in ws.private_endpoint_statuses)
    if not approved and mode != "allowonlyapprovedoutbound":
        yield WS_01.finding(ws.id, WORKSPACE, f"workspace {ws.name} has no approved private endpoint connection")
    if (ws.public_network_access or "Enabled").lower() != "disabled":
        detail = (f"workspace {ws.name}: publicNetworkAccess is "
                  f"{ws.public_network_access or 'not set (Enabled by default)'}")
        if approved:
            yield WS_02.finding(ws.id, WORKSPACE, detail,
                                edits=[Edit("set", ("properties", "publicNetworkAccess"), "Disabled",
                                            before=ws.public_network_access)],
                                fix_summary="set publicNetworkAccess: Disabled")
        else:
            # Disabling public access without an approved private endpoint locks every user out
            # of the studio and the SDK (baseline.md, EXF-WS-02): a person adds the endpoint first.
            yield WS_02.finding(ws.id, WORKSPACE, f"{detail}; it has no approved private endpoint connection",
                                fixable=False, fix_summary=WS_02_NO_ENDPOINT)
    if mode == "allowinternetoutbound":
        yield WS_04.finding(ws.id, WORKSPACE, f"workspace {ws.name} managed network is AllowInternetOutbound")
    if mode == "allowonlyapprovedoutbound":
        region = ws.region or ""
        allow = [p.replace("<region>", region) for p in ctx.config.fqdn_allow_list]
        bad = [f"{r.name} -> {r.destination}" for r in ws.outbound_rules
               if r.type.lower() == "fqdn" and r.category.lower() == "userdefined"
               and not (isinstance(r.destination, str) and _fqdn_allowed(r.destination, allow))]
        if bad:
            yield WS_05.finding(ws.id, WORKSPACE, f"workspace {ws.name} allows unapproved FQDNs: {'; '.join(bad)}",
                                items=bad)
