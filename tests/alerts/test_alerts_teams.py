"""Teams delivery against a real HTTP server on loopback: envelope, pacing, retries, secrecy."""

from __future__ import annotations

import itertools
import json
import logging
import socket

import jsonschema
import pytest

from exfilguard.alerts.cards import encode, teams_payload
from exfilguard.alerts.content import alert_content
from exfilguard.alerts.delivery import FAILED, SENT, DeliveryError
from exfilguard.alerts.dispatch import Dispatcher
from exfilguard.alerts.ledger import MemoryLedger
from exfilguard.alerts.message import Alert
from exfilguard.alerts.pacing import MinimumSpacing, backoff_delay, retry_after_seconds
from exfilguard.alerts.teams import TeamsSender
from tests.alerts_support.receivers import LoopbackReceiver, Reply
from tests.alerts_support.samples import card_schema, fixed_alert, nsg_finding

SECRET_PATH = "/workflows/5e1f7ab0c0de/triggers/manual/paths/invoke"
SECRET_QUERY = "api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=Zm9vYmFyLXNlY3JldC1zaWduYXR1cmU"


def webhook(receiver: LoopbackReceiver) -> str:
    return f"{receiver.base_url}{SECRET_PATH}?{SECRET_QUERY}"


class SleepLog:
    """Records backoff sleeps instead of waiting, so retry tests take no wall time."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_receiver_gets_the_envelope_with_a_valid_card():
    payload = teams_payload(alert_content(fixed_alert()))
    with LoopbackReceiver() as rx:
        attempts = TeamsSender(webhook(rx)).send(payload)
    assert attempts == 1
    (post,) = rx.posts()
    assert post.path == f"{SECRET_PATH}?{SECRET_QUERY}"
    assert post.headers["content-type"].startswith("application/json")
    assert post.body == encode(payload)
    body = post.json()
    assert body["type"] == "message"
    att = body["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive" and att["contentUrl"] is None
    jsonschema.Draft6Validator(card_schema()).validate(att["content"])


def test_429_then_500_then_200_gives_exactly_one_accepted_card():
    script = [Reply(429, {"Retry-After": "2"}), Reply(500), Reply(200)]
    sleeps = SleepLog()
    with LoopbackReceiver(script, default=Reply(400)) as rx:
        sender = TeamsSender(webhook(rx), sleep=sleeps, rand=lambda: 0.0)
        attempts = sender.send(teams_payload(alert_content(fixed_alert())))
    posts = rx.posts()
    assert attempts == 3 and len(posts) == 3
    assert len({p.body for p in posts}) == 1           # the same card each time
    assert rx.script == type(rx.script)()              # the 200 was consumed: accepted exactly once
    assert sleeps.calls[0] == 2.0                       # Retry-After honoured
    assert sleeps.calls[1] == pytest.approx(0.5 * 2)    # then exponential backoff (attempt 2, no jitter)


def test_dispatcher_reports_one_sent_outcome_after_retries():
    script = [Reply(429, {"Retry-After": "0"}), Reply(503), Reply(202)]
    with LoopbackReceiver(script, default=Reply(400)) as rx:
        teams = TeamsSender(webhook(rx), sleep=SleepLog())
        outcomes = Dispatcher(ledger=MemoryLedger(), teams=teams).send_alerts([fixed_alert()])
    assert [(o.status, o.channel, o.attempts) for o in outcomes] == [(SENT, "teams", 3)]
    assert len(rx.posts()) == 3


def test_requests_never_exceed_four_per_second_at_the_receiver():
    # Retries (429/500 with Retry-After 0) are requests too and must respect the spacing.
    script = [Reply(202), Reply(429, {"Retry-After": "0"}), Reply(202), Reply(500, {"Retry-After": "0"})]
    alerts = [Alert.build(nsg_finding(resource_id=f"{nsg_finding().resource_id}-{i}")) for i in range(7)]
    with LoopbackReceiver(script) as rx:
        teams = TeamsSender(webhook(rx))
        outcomes = Dispatcher(ledger=MemoryLedger(), teams=teams).send_alerts(alerts)
    arrivals = [p.arrived for p in rx.posts()]
    assert len(arrivals) == 9 and all(o.status == SENT for o in outcomes)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.25 - 0.005, gaps
    # over any one-second window, at most 4 requests arrived
    for i, t in enumerate(arrivals):
        assert sum(1 for u in arrivals[i:] if u - t < 1.0) <= 4


def test_minimum_spacing_with_an_injected_clock():
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    spacing = MinimumSpacing(0.25, clock=lambda: now[0], sleep=sleep)
    with spacing:
        now[0] += 0.05  # the request takes 50 ms
    with spacing:
        pass
    now[0] += 1.0
    with spacing:
        pass
    assert slept == [pytest.approx(0.25)]


def test_client_errors_are_not_retried():
    with LoopbackReceiver(default=Reply(400)) as rx, pytest.raises(DeliveryError) as info:
        TeamsSender(webhook(rx), sleep=SleepLog()).send({"type": "message", "attachments": []})
    assert len(rx.posts()) == 1
    assert info.value.retryable is False and info.value.status == 400


def test_persistent_5xx_gives_up_after_bounded_attempts():
    sleeps = SleepLog()
    with LoopbackReceiver(default=Reply(503)) as rx, pytest.raises(DeliveryError) as info:
        TeamsSender(webhook(rx), sleep=sleeps, max_attempts=4).send({"type": "message", "attachments": []})
    assert len(rx.posts()) == 4 and len(sleeps.calls) == 3
    assert info.value.retryable and "503" in str(info.value)


def test_long_retry_after_is_left_for_the_retry_run():
    with (LoopbackReceiver(default=Reply(429, {"Retry-After": "3600"})) as rx,
          pytest.raises(DeliveryError, match="Retry-After")):
        TeamsSender(webhook(rx), sleep=SleepLog()).send({"type": "message", "attachments": []})
    assert len(rx.posts()) == 1


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_webhook_url_never_appears_in_logs_errors_or_outcomes(caplog):
    caplog.set_level(logging.DEBUG)
    secrets = ("5e1f7ab0c0de", "Zm9vYmFyLXNlY3JldC1zaWduYXR1cmU", SECRET_PATH)
    with LoopbackReceiver(default=Reply(500)) as rx:
        url = webhook(rx)
        dispatcher = Dispatcher(ledger=MemoryLedger(), teams=TeamsSender(url, sleep=SleepLog(), max_attempts=2))
        outcomes = dispatcher.send_alerts([fixed_alert()])
        retried = dispatcher.retry_pending()
    refused_url = f"http://127.0.0.1:{_closed_port()}{SECRET_PATH}?{SECRET_QUERY}"
    with pytest.raises(DeliveryError) as info:
        TeamsSender(refused_url, sleep=SleepLog(), max_attempts=2).send({"type": "message", "attachments": []})
    shown = "\n".join([caplog.text, str(info.value), repr(dispatcher._senders["teams"]),
                       json.dumps([o.to_json() for o in outcomes + retried]),
                       *(d.last_error for d in dispatcher.ledger.pending())])
    assert outcomes[0].status == FAILED and "HTTP 500" in outcomes[0].error
    assert "Connection" in str(info.value) or "refused" in str(info.value)
    assert "retrying" in caplog.text       # something was logged, and it is clean
    for secret in secrets:
        assert secret not in shown


def test_retry_after_parsing():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0) == pytest.approx(60.0)
    assert backoff_delay(1, rand=lambda: 1.0) == 1.0 and backoff_delay(10, rand=lambda: 1.0) == 30.0


def test_senders_for_the_same_webhook_share_the_pace():
    # Two invocations on one Functions worker each build a sender: together still 4 per second.
    with LoopbackReceiver() as rx:
        a, b = TeamsSender(webhook(rx)), TeamsSender(webhook(rx))
        for _ in range(3):
            a.send({"type": "message", "attachments": []})
            b.send({"type": "message", "attachments": []})
    arrivals = [p.arrived for p in rx.posts()]
    assert len(arrivals) == 6
    assert min(y - x for x, y in itertools.pairwise(arrivals)) >= 0.25 - 0.005
