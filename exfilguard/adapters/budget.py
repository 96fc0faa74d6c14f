"""How much of ARM's quota ExfilGuard may use, and how long one invocation may take.

**The ARM budget.** ARM throttles each principal per region with token buckets (reads
about 25/s refilled, writes about 10/s). ExfilGuard's one identity shares them with every
event, sweep and HTTP call in the subscription, so one instance's ARM calls all take a token
from one client-side bucket first (:func:`instance_budget`, default 20 reads/s and 5
writes/s, ``EXFILGUARD_ARM_READS_PER_SECOND`` / ``EXFILGUARD_ARM_WRITES_PER_SECOND``). It
paces every try, retries and LRO polls included, below ARM's own refill, so ExfilGuard never
starts a throttling spiral. What ARM says wins over the local guess:

- a 429 with ``Retry-After`` pauses the whole instance (every thread) for that long, not
  just the request that met it;
- ``x-ms-ratelimit-remaining-subscription-reads`` / ``-writes`` (and the ``-global-`` /
  ``-tenant-`` variants) running low slows the instance down before ARM has to say 429.

**The deadline.** An HTTP function must answer within 230 s; ExfilGuard answers within 200 s
including every retry. An :class:`Deadline` travels with the ARM client: Retry-After and
backoff waits are capped by what is left, a wait that would outlive it is not started, and a
long-running operation still going at the deadline is reported as pending (HTTP 202 with a
status URL) rather than waited for.

Pure Python, no SDK import: the pipeline policy that applies this lives in
:mod:`exfilguard.adapters.arm`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

DEFAULT_READS_PER_SECOND = 20.0
DEFAULT_WRITES_PER_SECOND = 5.0

LOW_REMAINING = 50
"""Below this many requests left in ARM's bucket the instance slows to ARM's refill."""

MAX_PAUSE_S = 60.0
"""The longest one 429 pauses the whole instance (the request that met it follows its own
Retry-After, capped by its deadline)."""

_WRITE_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})


class BudgetExceeded(Exception):
    """The invocation's deadline does not leave room for the next wait or request."""


class Deadline:
    """A point on the monotonic clock; ``None`` seconds means no deadline."""

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.seconds = seconds
        self.at = None if seconds is None else clock() + seconds

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - self._clock()

    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0

    def cap(self, wait: float, what: str) -> float:
        """``wait`` if the deadline leaves room for it, else :class:`BudgetExceeded`."""
        left = self.remaining()
        if left is not None and wait >= left:
            raise BudgetExceeded(f"{what} of {wait:g}s would pass the {self.seconds:g}s deadline "
                                 f"({max(left, 0):.1f}s left)")
        return wait


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; thread-safe."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token; the seconds to wait before using it (0 when one was ready). Tokens
        may go negative: each caller queues behind the ones before it, in order."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def drain(self, seconds: float) -> None:
        """Nothing may be taken for ``seconds`` (ARM said wait, or its bucket is nearly empty)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens = min(self._tokens, -seconds * self.rate)


@dataclass
class BudgetStats:
    reads: int = 0
    writes: int = 0
    throttled: int = 0


class ArmBudget:
    """One instance's share of ARM: a read bucket and a write bucket."""

    def __init__(self, reads_per_second: float = DEFAULT_READS_PER_SECOND,
                 writes_per_second: float = DEFAULT_WRITES_PER_SECOND, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        # A small burst: one event's closure (three reads) goes at once, while a sweep or a
        # storm is held to the rate from its first second on.
        self.reads = TokenBucket(reads_per_second, max(3.0, reads_per_second / 4), clock=clock)
        self.writes = TokenBucket(writes_per_second, max(1.0, writes_per_second / 4), clock=clock)
        self._sleep = sleep
        self._lock = threading.Lock()
        self.stats = BudgetStats()

    def bucket(self, method: str) -> TokenBucket:
        return self.writes if method.upper() in _WRITE_METHODS else self.reads

    def acquire(self, method: str, deadline: Deadline | None = None) -> float:
        """Wait for a token for one request; raises :class:`BudgetExceeded` rather than wait past
        ``deadline`` (the token is then not used, which only makes the instance slower)."""
        wait = self.bucket(method).reserve()
        if wait > 0 and deadline is not None:
            deadline.cap(wait, "waiting for the ARM request budget")
        with self._lock:
            if method.upper() in _WRITE_METHODS:
                self.stats.writes += 1
            else:
                self.stats.reads += 1
        if wait > 0:
            self._sleep(wait)
        return wait

    def observe(self, method: str, status: int, headers: Mapping[str, str]) -> None:
        """Learn from ARM's answer: 429's Retry-After pauses everyone; a low remaining count
        slows everyone to ARM's refill."""
        bucket = self.bucket(method)
        if status == 429:
            with self._lock:
                self.stats.throttled += 1
            retry_after = _seconds(headers.get("Retry-After") or headers.get("retry-after"))
            bucket.drain(min(MAX_PAUSE_S, retry_after if retry_after is not None else 10.0 / bucket.rate))
            return
        remaining = _remaining(headers)
        if remaining is not None and remaining < LOW_REMAINING:
            # ARM refills roughly one token per 1/25 s; hold off long enough for it to catch up.
            bucket.drain((LOW_REMAINING - remaining) / 25.0)


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None


def _remaining(headers: Mapping[str, str]) -> int | None:
    lowest: int | None = None
    for name, value in headers.items():
        n = name.lower()
        if n.startswith("x-ms-ratelimit-remaining-") and ("reads" in n or "writes" in n or "deletes" in n):
            try:
                v = int(str(value).strip())
            except ValueError:
                continue
            lowest = v if lowest is None else min(lowest, v)
    return lowest


_instances: dict[tuple[str, float, float], ArmBudget] = {}
_instance_lock = threading.Lock()


def instance_budget(endpoint: str = "", reads_per_s: float = DEFAULT_READS_PER_SECOND,
                    writes_per_s: float = DEFAULT_WRITES_PER_SECOND) -> ArmBudget:
    """The one budget of this process (a Function instance) for an ARM endpoint; a new one when
    the rates change. (Each endpoint is its own quota: the tests' emulators never share one.)"""
    key = (endpoint, reads_per_s, writes_per_s)
    with _instance_lock:
        found = _instances.get(key)
        if found is None:
            if len(_instances) > 32:
                _instances.clear()
            found = _instances[key] = ArmBudget(key[1], key[2])
        return found
