"""Replay saved events through the event path: ``exfilguard replay FILE`` and the Function
app's dead-letter timer (:mod:`exfilguard.app.deadletter`).

What a dead-letter blob (or a saved event file) holds is deserialised with ``azure-eventgrid``
(:class:`azure.eventgrid.EventGridEvent` / :class:`azure.core.messaging.CloudEvent`), so what
the replay accepts is what the SDK accepts.
"""

from __future__ import annotations

import json
from typing import Any

from exfilguard.flows.event import handle_event
from exfilguard.flows.runtime import Services


class PoisonEvent(ValueError):
    """The content is not an event the SDK can deserialise; retrying cannot help."""


def parse_events(raw: bytes | str) -> list[dict[str, Any]]:
    """The events of one dead-letter blob (or a saved event file), deserialised by the SDK and
    handed on as plain envelopes the event path reads (time as an aware datetime)."""
    from azure.core.messaging import CloudEvent
    from azure.eventgrid import EventGridEvent

    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise PoisonEvent(f"not JSON: {str(exc)[:200]}") from None
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise PoisonEvent("no event in it")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise PoisonEvent(f"item {i} is not an event object")
        try:
            if any(k.lower() == "specversion" for k in item):
                ce: Any = CloudEvent.from_dict({k if k.lower() != "specversion" else "specversion": v
                                           for k, v in item.items()})
                out.append({"specversion": ce.specversion, "id": ce.id, "source": ce.source, "type": ce.type,
                            "time": ce.time, "subject": ce.subject, "data": ce.data})
            else:
                eg = EventGridEvent.from_dict(item)
                if not eg.id or not eg.event_type:
                    raise ValueError("id and eventType are required")
                out.append({"id": eg.id, "eventType": eg.event_type, "subject": eg.subject,
                            "eventTime": eg.event_time, "topic": eg.topic, "dataVersion": eg.data_version,
                            "data": eg.data})
        except PoisonEvent:
            raise
        except Exception as exc:  # the SDK's own refusal, whatever its type
            raise PoisonEvent(f"item {i}: the Event Grid SDK cannot read it ({type(exc).__name__}: "
                              f"{str(exc)[:200]})") from None
    return out


def replay_file(path: str, services: Services) -> list[Any]:
    """``exfilguard replay FILE``: the events of a saved file through the normal event path."""
    with open(path, "rb") as f:
        raw = f.read()
    return [handle_event(e, services) for e in parse_events(raw)]
