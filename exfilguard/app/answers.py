"""How every HTTP handler answers what went wrong, in one place.

A handler must never raise: the Functions host would answer a bare 500 and the caller would
not learn whether to fix the app's settings, wait for storage or read the log. So a bad
setting answers 500 naming it, unreachable state storage 503 (retry later), anything else
500 with the exception's type (the details stay in the log); each answer's latency is
recorded by handler name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from exfilguard.adapters import telemetry
from exfilguard.adapters.state import StateError
from exfilguard.core.settings import SettingsError

log = telemetry.get_logger("exfilguard.http")


class _Answer(Protocol):
    @property
    def status(self) -> int: ...


A = TypeVar("A", bound=_Answer)


def answered(name: str, route: str, error: Callable[[int, str], A], handle: Callable[[], A]) -> A:
    """``handle()``'s answer, or the ``error(status, message)`` that says what failed."""
    started = time.perf_counter()
    answer = error(500, "internal error")
    try:
        answer = handle()
    except SettingsError as exc:
        log.error("configuration error: %s", exc)
        answer = error(500, f"the function app is misconfigured: {exc}")
    except StateError as exc:
        log.error("state storage failed: %s", exc)
        telemetry.failure("state")
        answer = error(503, f"state storage is unavailable: {exc}")
    except Exception as exc:
        log.exception("%s failed", route)
        telemetry.failure("http")
        answer = error(500, f"internal error: {type(exc).__name__}; the function log has the details")
    finally:
        telemetry.handler_latency(name, (time.perf_counter() - started) * 1000, str(answer.status))
    return answer
