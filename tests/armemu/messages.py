"""Plain request/response values passed between the HTTP layer and the ARM semantics."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.armemu import arm


@dataclass(slots=True)
class Request:
    method: str
    path: str
    """Percent-decoded path without the query."""
    raw_path: str
    """The path as received, reused verbatim in nextLink."""
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes

    def param(self, name: str) -> str | None:
        """Query parameters are case-insensitive in ARM (``$skiptoken`` works as well as ``$skipToken``)."""
        lowered = name.lower()
        return next((v for k, v in self.query.items() if k.lower() == lowered), None)

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False
    fault: str | None = None


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def json_response(status: int, value: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, dumps(value), [("Content-Type", "application/json; charset=utf-8"), *(headers or [])])


def error_response(status: int, code: str, message: str) -> Response:
    return json_response(status, arm.error(code, message))


