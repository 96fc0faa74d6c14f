"""Exemptions switch protection off, so nobody sets one unseen (baseline.md, "Exemptions").

Every evaluation the Function app acts on (event, HTTP with ``"remediate": true``, sweep)
compares the ``exfilguard-exempt`` tags it read with the values it saw before, kept in Table
storage (``<prefix>exemptions``, one row per tag holder). A tag that appeared or changed
raises an alert naming who changed it (the event's claims; unknown for a sweep), the rules,
until when and the reason, and whether it is in force, in every mode. A sweep, which reads
everything, also forgets tags that were removed, and hands the exemptions in force to the
digest, which lists them with their expiry.

Which tags an event looks at: those of the resource it changed (a rule event: its NSG), not
of the neighbours it read, so the "who" of the alert is the event's caller. A tag change a
routed event does not report (``az tag update`` writes ``Microsoft.Resources/tags``) is found
by the next sweep, without a "who".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from exfilguard.adapters import telemetry
from exfilguard.adapters.state import StateError
from exfilguard.core import exemptions, ids
from exfilguard.core.model import Resource
from exfilguard.core.picture import Picture
from exfilguard.core.rules import RULES

log = telemetry.get_logger("exfilguard.exemptions")

_KNOWN = frozenset(RULES)
PARTITION = "tag"


@dataclass(frozen=True, slots=True)
class Tagged:
    resource: Resource
    value: str
    verdict: exemptions.Verdict


def tagged(resources: Iterable[Resource], today: date, max_days: int) -> list[Tagged]:
    """The resources carrying an exemption tag, with what the tag amounts to today."""
    out = []
    for r in resources:
        value = exemptions.tag_value(r.tags) if r.tags else None
        if value is not None:
            out.append(Tagged(r, value, exemptions.judge(value, today, known_rules=_KNOWN, max_days=max_days)))
    return out


def event_resources(picture: Picture, resource_uri: str) -> list[Resource]:
    """The resource an event changed, or the nearest ancestor the picture holds (a security
    rule's NSG): where that change's tag lives."""
    rid = resource_uri.rstrip("/")
    while rid.count("/") >= 8:
        found = picture.get(rid)
        if found is not None:
            return [found]
        rid = ids.parent_id(rid)
    return []


def _row(resource_id: str) -> str:
    return hashlib.sha256(ids.key(resource_id).encode()).hexdigest()


class ExemptionStore:
    """Last seen tag value per tag holder. ``table`` is an ``azure.data.tables.TableClient``."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def seen(self, resource_ids: Iterable[str]) -> dict[str, str]:
        """key(resource ID) -> value last seen, for these resources (one read each)."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        out: dict[str, str] = {}
        for rid in resource_ids:
            try:
                e = self.table.get_entity(PARTITION, _row(rid))
            except ResourceNotFoundError:
                continue
            except AzureError as exc:
                raise StateError(f"table {self.table.table_name}: read failed ({exc})") from exc
            out[ids.key(rid)] = e.get("Value", "")
        return out

    def all(self) -> dict[str, tuple[str, str]]:
        """key(resource ID) -> (resource ID, value), every row (a sweep's one query)."""
        from azure.core.exceptions import AzureError

        try:
            rows = list(self.table.query_entities("PartitionKey eq @pk", parameters={"pk": PARTITION}))
        except AzureError as exc:
            raise StateError(f"table {self.table.table_name}: query failed ({exc})") from exc
        return {ids.key(e.get("ResourceId", "")): (e.get("ResourceId", ""), e.get("Value", "")) for e in rows}

    def remember(self, resource_id: str, value: str) -> None:
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        try:
            self.table.upsert_entity({"PartitionKey": PARTITION, "RowKey": _row(resource_id),
                                      "ResourceId": resource_id[:2048], "Value": value[:30_000]},
                                     mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise StateError(f"table {self.table.table_name}: write failed ({exc})") from exc

    def forget(self, resource_id: str) -> None:
        from azure.core.exceptions import AzureError

        try:
            self.table.delete_entity(PARTITION, _row(resource_id))
        except AzureError as exc:
            raise StateError(f"table {self.table.table_name}: delete failed ({exc})") from exc


def watch(inv: Any, picture: Picture, today: date, *, complete: bool) -> list[Tagged]:
    """Alert on every exemption tag that appeared or changed among the resources this run is
    about; returns the tags in force (for the digest). ``complete``: the picture is the whole
    subscription (a sweep that read everything), so a remembered tag it lacks was removed."""
    from exfilguard.adapters.eventgrid import who
    from exfilguard.alerts.message import ExemptionChange, ResourceFacts

    svc = inv.services
    cfg = svc.settings.config
    ev = inv.event
    if ev is not None:
        resources = event_resources(picture, ev.resource_uri)
    else:
        resources = list(picture.all_resources())
    found = tagged(resources, today, cfg.max_exemption_days)
    store = ExemptionStore(svc.state.table(f"{svc.settings.state_prefix}exemptions"))
    if complete:
        known = store.all()
        before = {k: v for k, (_, v) in known.items()}
        present = {ids.key(t.resource.id) for t in found}
        for k, (rid, _) in known.items():
            if k not in present:
                store.forget(rid)
                inv.audit("exemption-removed", resource_id=rid, detail="exfilguard-exempt tag no longer present")
    else:
        before = store.seen(t.resource.id for t in found) if found else {}
    change = who(ev) if ev is not None else None
    for t in found:
        previous = before.get(ids.key(t.resource.id))
        if previous == t.value:
            continue
        ex = t.verdict.exemption
        x = ExemptionChange(
            resource=ResourceFacts.from_resource_id(t.resource.id, region=t.resource.location or ""),
            value=t.value, previous=previous or "", rule_ids=tuple(sorted(ex.rules)) if ex else (),
            until=ex.until if ex else "", reason=ex.reason if ex else "", status=t.verdict.kind,
            status_note=t.verdict.message, change=change, detected_at=svc.clock())
        outcomes = _send(inv, x)
        store.remember(t.resource.id, t.value)
        inv.audit("exemption-changed" if previous else "exemption-set", resource_id=t.resource.id,
                  actor=change.handle if change else "",
                  outcome=outcomes, detail=f"exfilguard-exempt={t.value} ({t.verdict.kind}: {t.verdict.message})"
                                           + (f"; before: {previous}" if previous else ""))
        log.warning("exemption tag %s on %s by %s: %s", "changed" if previous else "set", t.resource.id,
                    (change.handle if change else "") or "unknown", t.verdict.kind)
    return [t for t in found if t.verdict.in_force]


def _send(inv: Any, x: Any) -> str:
    try:
        outcomes = list(inv.services.notifier().send_exemption_change(x))
    except Exception as exc:  # the audit row still says a tag changed, and why the alert did not go
        log.exception("exemption alert failed")
        telemetry.failure("alerts")
        return f"alert not sent: {type(exc).__name__}: {exc}"
    return ", ".join(f"{o.kind}:{o.status}" for o in outcomes) or "nothing sent"


def active_for_digest(found: list[Tagged]) -> list[Any]:
    from exfilguard.alerts.message import ActiveExemption, ResourceFacts

    return [ActiveExemption(ResourceFacts.from_resource_id(t.resource.id, region=t.resource.location or ""),
                            tuple(sorted(t.verdict.exemption.rules)), t.verdict.exemption.until,
                            t.verdict.exemption.reason)
            for t in found if t.verdict.exemption is not None]
