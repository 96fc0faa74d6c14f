"""The request log: what tests and benchmarks assert on instead of timing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

Kind = Literal["read", "write", "poll", "admin", "action"]


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One request as the emulator saw it. ``status`` is 0 for a dropped connection."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    kind: Kind
    authorization: bool
    if_match: str | None
    if_none_match: str | None
    body: Any
    time: float
    fault: str | None = None
    """``"429"``/``"reset"``/... when an injected fault answered instead of the emulator."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """Append-only list of records; guarded by the emulator's lock."""

    def __init__(self) -> None:
        self._records: list[LogRecord] = []

    def append(self, record: LogRecord) -> None:
        self._records.append(record)

    def records(self) -> list[LogRecord]:
        return list(self._records)

    def clear(self) -> int:
        n = len(self._records)
        self._records.clear()
        return n

    def select(self, *, kind: str | None = None, method: str | None = None, path: str | None = None,
               status: int | None = None) -> list[LogRecord]:
        """Records matching every given filter; ``path`` is a case-insensitive substring."""
        tests: list[Callable[[LogRecord], bool]] = []
        if kind is not None:
            tests.append(lambda r: r.kind == kind)
        if method is not None:
            tests.append(lambda r: r.method == method.upper())
        if path is not None:
            tests.append(lambda r: path.lower() in r.path.lower())
        if status is not None:
            tests.append(lambda r: r.status == status)
        return [r for r in self._records if all(t(r) for t in tests)]
