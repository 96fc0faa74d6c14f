"""One "who changed it": the readable handle and the loop guard's stored form."""

from __future__ import annotations

from datetime import UTC, datetime

from exfilguard.core.actor import Actor


def test_actor_handle_prefers_the_person_then_the_app_then_the_object():
    assert Actor(name="Dana Whitfield", upn="dana@contoso.com").handle == "Dana Whitfield (dana@contoso.com)"
    assert Actor(upn="dana@contoso.com", app_id="app-1").handle == "dana@contoso.com"
    assert Actor(app_id="app-7", object_id="oid-9").handle == "app app-7"
    assert Actor(object_id="oid-9").handle == "object oid-9" and Actor().handle == ""
    stored = Actor(name="Dana", upn="dana@contoso.com", app_id="app-1", correlation_id="corr-1",
                   time=datetime(2025, 3, 14, 9, 12, 5, tzinfo=UTC))
    back = Actor.from_json(stored.to_json())
    assert back is not None and back.handle == stored.handle and back.time == stored.time
    assert back.correlation_id == "corr-1" and Actor.from_json("not a dict") is None
