"""Request pacing and retry delays, with the clock and sleep injectable for tests.

The Teams limit is "at most 4 requests per second" per webhook. :class:`MinimumSpacing`
starts each request at least ``interval`` after the previous one *finished*: stricter than a
token bucket (which would allow a burst of 4), and it makes the guarantee hold at the
receiver, not just at the sender, whatever the network latency.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class MinimumSpacing:
    """At most one request per ``interval`` seconds, counted from the previous request's end."""

    def __init__(self, interval: float = 0.25, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep):
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._last_end: float | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> MinimumSpacing:
        self._lock.acquire()
        if self._last_end is not None:
            wait = self._last_end + self.interval - self._clock()
            while wait > 0:
                self._sleep(wait)
                wait = self._last_end + self.interval - self._clock()
        return self

    def __exit__(self, *exc: object) -> None:
        self._last_end = self._clock()
        self._lock.release()


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, *, base: float = 1.0, cap: float = 30.0,
                  rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter (attempt n waits between half and all of base * 2**(n-1),
    capped): spreads the retries of several function instances hitting the same throttled webhook."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return ceiling * (0.5 + rand() / 2)
