"""Dead-lettered events, replayed: an event Event Grid gave up on is a change never checked.

The event subscription dead-letters into a Blob container (managed identity). The
``dead_letter_replay`` timer (``EXFILGUARD_DEADLETTER_SCHEDULE``, default every 15 minutes)
drains it:

1. Each blob holds what Event Grid wrote: a JSON array of events (or one event), in the Event
   Grid schema or as CloudEvents. Each is deserialised with ``azure-eventgrid``
   (:class:`azure.eventgrid.EventGridEvent` / :class:`azure.core.messaging.CloudEvent`), so
   what the replay accepts is what the SDK accepts.
2. Every event runs through the normal event path (:func:`exfilguard.flows.event.handle_event`):
   re-read from ARM, evaluated, fixed or alerted, audited.
3. The blob is deleted only after its events' outcomes are audited (plus one
   ``dead-letter-replayed`` row naming the blob).
4. A blob that fails (the event path raised, say ARM still unreachable) keeps a try count in
   its metadata and is tried again next time. A poison blob (unparseable, or failing
   ``EXFILGUARD_DEADLETTER_MAX_ATTEMPTS`` times, default 5) is moved to
   ``<container>-poison``, audited and alerted, so a person looks at it.

``exfilguard replay FILE`` runs steps 1-2 for a saved event by hand (:mod:`exfilguard.flows.replay`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from exfilguard.adapters import telemetry
from exfilguard.adapters.state import AuditEntry
from exfilguard.flows.event import handle_event
from exfilguard.flows.replay import PoisonEvent, parse_events
from exfilguard.flows.runtime import Services

log = telemetry.get_logger("exfilguard.deadletter")

_ATTEMPTS_KEY = "exfilguardattempts"




@dataclass
class Replay:
    """What one drain did, for the audit, the log and the tests."""

    replayed: list[str] = field(default_factory=list)  # blob names deleted after replay
    retried: list[str] = field(default_factory=list)  # left for the next run
    poisoned: list[str] = field(default_factory=list)  # moved aside
    decisions: list[str] = field(default_factory=list)


def _blob_service(services: Services) -> Any:
    from azure.storage.blob import BlobServiceClient

    storage = services.settings.storage
    if storage.connection_string:
        service = BlobServiceClient.from_connection_string(storage.connection_string)
    else:
        service = BlobServiceClient(account_url=storage.blob_uri, credential=services.state._storage_credential())
    return service


def drain(services: Services) -> Replay:
    """The timer: replay every dead-lettered blob once."""
    from azure.core.exceptions import ResourceNotFoundError

    name, max_attempts = services.settings.deadletter_container, services.settings.deadletter_max_attempts
    service = _blob_service(services)
    container = service.get_container_client(name)
    out = Replay()
    try:
        blobs = [b.name for b in container.list_blobs()]
    except ResourceNotFoundError:
        return out  # nothing was ever dead-lettered
    for blob_name in blobs:
        blob = container.get_blob_client(blob_name)
        props = blob.get_blob_properties()
        attempts = int((props.metadata or {}).get(_ATTEMPTS_KEY, "0") or 0)
        raw = blob.download_blob().readall()
        try:
            events = parse_events(raw)
        except PoisonEvent as exc:
            _poison(services, service, container, blob, blob_name, raw, f"unreadable: {exc}", out)
            continue
        try:
            decisions = [handle_event(e, services).decision for e in events]
        except Exception as exc:  # transient (Event Grid would have redelivered it): try again later
            attempts += 1
            log.warning("dead letter %s failed (%d of %d): %s", blob_name, attempts, max_attempts, exc)
            if attempts >= max_attempts:
                _poison(services, service, container, blob, blob_name, raw,
                        f"failed {attempts} times; last: {type(exc).__name__}: {str(exc)[:300]}", out)
            else:
                blob.set_blob_metadata({**(props.metadata or {}), _ATTEMPTS_KEY: str(attempts)})
                out.retried.append(blob_name)
            continue
        services.state.audit(AuditEntry(trigger="timer", decision="dead-letter-replayed",
                                        event_id=",".join(str(e.get("id", "")) for e in events)[:256],
                                        outcome=", ".join(decisions)[:2000],
                                        detail=f"blob {name}/{blob_name} replayed and deleted"))
        blob.delete_blob()
        out.replayed.append(blob_name)
        out.decisions += decisions
    if out.replayed or out.poisoned:
        log.info("dead letters: %d replayed, %d retried later, %d poisoned", len(out.replayed), len(out.retried),
                 len(out.poisoned))
    return out


def _poison(services: Services, service: Any, container: Any, blob: Any, blob_name: str, raw: bytes, reason: str,
            out: Replay) -> None:
    """Move a blob that cannot be replayed to ``<container>-poison``, audit it and tell people."""
    from azure.core.exceptions import ResourceExistsError

    aside = service.get_container_client(f"{container.container_name}-poison")
    with contextlib.suppress(ResourceExistsError):
        aside.create_container()
    aside.upload_blob(blob_name, raw, overwrite=True, metadata={"reason": reason[:1000].encode("ascii", "replace")
                                                                 .decode("ascii")})
    services.state.audit(AuditEntry(trigger="timer", decision="dead-letter-poison", outcome=reason[:2000],
                                    detail=f"blob {container.container_name}/{blob_name} moved to "
                                           f"{aside.container_name}"))
    blob.delete_blob()
    out.poisoned.append(blob_name)
    telemetry.failure("dead-letter")
    try:
        from exfilguard.alerts.upkeep import notify_operators

        notify_operators(services.notifier(), title="ExfilGuard could not replay a dead-lettered event",
                         summary=f"A change event Event Grid gave up on could not be checked either: {reason}",
                         facts=(("Blob", f"{aside.container_name}/{blob_name}"), ("Reason", reason)),
                         what_to_do="Look at the blob, fix what stops it (or run `exfilguard replay FILE` on "
                                    "it once fixed), and check the resource it names by hand.")
    except Exception:  # alerting must not undo the move; the audit row says what happened
        log.exception("could not alert about the poison dead letter")
