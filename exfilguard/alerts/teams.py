"""Posting cards to a Microsoft Teams Workflows (Power Automate) webhook.

Why ``http.client`` and a small retry loop rather than an azure-core pipeline: the webhook
URL *is* the credential (its ``sig`` query parameter signs the request), and azure-core's
HTTP logging policy and the requests/urllib3 exceptions it surfaces both print request
URLs. Here the URL is parsed once, never formatted into a log line or an exception, and every
error text passes through :meth:`TeamsSender._scrub` as a second guard. The loop itself is
short: 429 and 5xx (and network errors) are retried with exponential backoff and jitter,
honouring Retry-After, for a bounded number of attempts; every attempt goes through the
same :class:`~exfilguard.alerts.pacing.MinimumSpacing`, so retries count against the
4-requests-per-second limit too.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from exfilguard.alerts.cards import encode
from exfilguard.alerts.delivery import DeliveryError
from exfilguard.alerts.pacing import MinimumSpacing, Sleep, backoff_delay, retry_after_seconds

log = logging.getLogger("exfilguard.alerts.teams")

TEAMS_RATE_INTERVAL = 0.25  # 4 requests per second

_SPACINGS: dict[str, MinimumSpacing] = {}
_SPACINGS_LOCK = threading.Lock()


def shared_spacing(url: str) -> MinimumSpacing:
    """One pacer per webhook per process, so concurrent invocations on one Functions worker
    share the budget (keyed by a hash: the URL itself is not kept in another place)."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
    with _SPACINGS_LOCK:
        return _SPACINGS.setdefault(digest, MinimumSpacing(TEAMS_RATE_INTERVAL))


class TeamsSender:
    """Delivers Teams envelopes; one instance per webhook (it owns that webhook's pacing)."""

    channel = "teams"

    def __init__(
        self,
        url: str,
        *,
        spacing: MinimumSpacing | None = None,
        max_attempts: int = 5,
        max_retry_after: float = 60.0,
        backoff_base: float = 1.0,
        timeout: float = 30.0,
        sleep: Sleep = time.sleep,
        rand: Callable[[], float] = random.random,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"https", "http"} or not parts.hostname:
            raise ValueError("the Teams webhook URL must be an absolute https:// URL")  # value never shown
        self._secret_texts = tuple(t for t in {url, parts.path + ("?" + parts.query if parts.query else ""),
                                                parts.query, parts.path} if len(t) > 8)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._target = parts.path or "/"
        if parts.query:
            self._target += "?" + parts.query
        self.spacing = spacing or shared_spacing(url)
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self.backoff_base = backoff_base
        self.timeout = timeout
        self._sleep = sleep
        self._rand = rand
        self._ssl_context = ssl_context

    def __repr__(self) -> str:
        return "TeamsSender(url=<secret>)"

    def _scrub(self, text: str) -> str:
        for secret in sorted(self._secret_texts, key=len, reverse=True):
            text = text.replace(secret, "<webhook>")
        return text

    def _post_once(self, body: bytes) -> tuple[int, str | None]:
        if self._https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout,
                context=self._ssl_context or ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            conn.request("POST", self._target, body=body, headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "exfilguard-alerts/1",
            })
            resp = conn.getresponse()
            resp.read(65536)
            return resp.status, resp.getheader("Retry-After")
        finally:
            conn.close()

    def send(self, payload: dict[str, Any]) -> int:
        """Post one envelope; return the number of requests it took. Raises :class:`DeliveryError`
        when it was not accepted within the attempt budget."""
        body = encode(payload)
        last = ""
        status: int | None = None
        for attempt in range(1, self.max_attempts + 1):
            retry_after: float | None = None
            try:
                with self.spacing:
                    status, retry_after_raw = self._post_once(body)
                retry_after = retry_after_seconds(retry_after_raw)
            except (OSError, http.client.HTTPException) as exc:
                status = None
                last = self._scrub(f"{type(exc).__name__}: {exc}")
            if status is not None and 200 <= status < 300:
                return attempt
            if status is not None:
                last = f"Teams webhook answered HTTP {status}"
                if status not in (429, 408) and status < 500:
                    raise DeliveryError(f"{last}; not retried (check the workflow and the card)",
                                        attempts=attempt, status=status, retryable=False)
            if attempt == self.max_attempts:
                break
            delay = retry_after if retry_after is not None else backoff_delay(
                attempt, base=self.backoff_base, rand=self._rand)
            if delay > self.max_retry_after:
                raise DeliveryError(f"{last}; Retry-After {delay:.0f}s is beyond {self.max_retry_after:.0f}s, "
                                    "left for the next retry run", attempts=attempt, status=status)
            log.warning("%s (attempt %d of %d); retrying in %.2fs", last, attempt, self.max_attempts, delay)
            self._sleep(delay)
        raise DeliveryError(f"{last} after {self.max_attempts} attempts", attempts=self.max_attempts,
                            status=status)
