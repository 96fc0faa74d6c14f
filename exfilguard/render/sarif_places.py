"""Where a SARIF result points: a URI consumers can resolve and the line of the resource.

Microsoft's SARIF validator rejects a relative reference that starts with ``/`` (SARIF1004:
an absolute path is not a URI) and warns on a location without a region (SARIF2017); GitHub
code scanning resolves relative URIs against the repository root. So a relative path stays
relative, against the ``SRCROOT`` base ID declared in ``originalUriBaseIds``; an absolute path
becomes a ``file://`` URI; and each result gets the line of ``"id": "<resource ID>"`` (or
``"resourceId"`` in a what-if file) in the file it came from, or the whole file when the
resource is not written there (a finding about a resource the deployment does not name).
"""

from __future__ import annotations

import bisect
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from exfilguard.core import ids

BASE_ID = "SRCROOT"
# "id": "..." and "resourceId": "..." (JSON strings; escapes allowed).
_ID_FIELD = re.compile(r'"(?:id|resourceId)"\s*:\s*("(?:[^"\\]|\\.)*")')


def artifact_location(path: str) -> dict[str, Any]:
    """A relative path (POSIX form) against SRCROOT, or a ``file://`` URI for an absolute one."""
    p = Path(path)
    if p.is_absolute():
        return {"uri": p.as_uri()}
    return {"uri": p.as_posix(), "uriBaseId": BASE_ID}


def uri_base_ids(cwd: str | None = None) -> dict[str, Any]:
    """SRCROOT as the directory the relative paths were given from (with the trailing slash
    the spec asks for)."""
    root = Path(cwd or os.getcwd()).resolve().as_uri()
    return {BASE_ID: {"uri": root.rstrip("/") + "/"}}


class FileLocator:
    """The line and columns of each resource ID written in one JSON file, found in one pass."""

    def __init__(self, path: str, text: str | None = None) -> None:
        self.path = path
        if text is None:
            try:
                text = Path(path).read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError):
                text = ""
        self._newlines = [i for i, ch in enumerate(text) if ch == "\n"]
        self._lines = text.count("\n") + 1
        self._last_len = len(text) - (self._newlines[-1] + 1 if self._newlines else 0)
        self._where: dict[str, tuple[int, int, int]] = {}
        for m in _ID_FIELD.finditer(text):
            try:
                value = json.loads(m.group(1))
            except ValueError:
                continue
            if isinstance(value, str) and value.startswith("/"):
                k = ids.key(value)
                if k not in self._where:  # the first mention: a resource's own body comes before references
                    line, col = self._line_col(m.start())
                    self._where[k] = (line, col, col + (m.end() - m.start()))

    def _line_col(self, offset: int) -> tuple[int, int]:
        n = bisect.bisect_left(self._newlines, offset)
        start = self._newlines[n - 1] + 1 if n else 0
        return n + 1, offset - start + 1

    def region(self, resource_id: str) -> dict[str, int] | None:
        hit = self._where.get(ids.key(resource_id))
        if hit is None:
            return None
        line, start, end = hit
        return {"startLine": line, "startColumn": start, "endLine": line, "endColumn": end}

    def whole_file(self) -> dict[str, int]:
        return {"startLine": 1, "startColumn": 1, "endLine": self._lines, "endColumn": self._last_len + 1}


def locator(files: Sequence[FileLocator]) -> Callable[[str], dict[str, Any]]:
    """A physicalLocation for a resource ID: the first file that names it, else the whole of
    the first file."""
    def place(resource_id: str) -> dict[str, Any]:
        for f in files:
            region = f.region(resource_id)
            if region is not None:
                return {"artifactLocation": artifact_location(f.path), "region": region}
        first = files[0]
        return {"artifactLocation": artifact_location(first.path), "region": first.whole_file()}

    return place


def sarif_options(*paths: str, texts: dict[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for :func:`exfilguard.render.report.to_sarif` for findings read from ``paths``
    (the what-if file first, then the snapshot)."""
    files = [FileLocator(p, (texts or {}).get(p)) for p in paths if p]
    if not files:
        return {}
    out: dict[str, Any] = {"locate": locator(files)}
    if any(not Path(f.path).is_absolute() for f in files):
        out["uri_base_ids"] = uri_base_ids()
    return out
