"""``GET /api/report``: the latest sweep's HTML report (or ``?sweep=<id>``'s), as stored by it.

The page is the one ``exfilguard scan --format html`` writes (exfilguard.render.html), stored
compressed next to the sweep's JSON report. It is served with a Content-Security-Policy that
allows its own inline style and script (by hash) and nothing else, and may not be framed:
whatever a resource name in it says, the browser loads nothing from anywhere. Errors are small
HTML pages under the same policy; nothing raises out of this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

from exfilguard.adapters import telemetry
from exfilguard.app.answers import answered
from exfilguard.flows.runtime import Services

log = telemetry.get_logger("exfilguard.report")

_SWEEP_ID = re.compile(r"[0-9a-f]{32}")


def page_headers() -> dict[str, str]:
    """The answer's headers. The page's policy is imported here, not at module level: the
    renderer is not needed to start the Function app (cold start)."""
    from exfilguard.render.html.page import CSP

    return {
        "Content-Security-Policy": f"{CSP}; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


@dataclass(frozen=True)
class Page:
    """An HTML answer independent of azure.functions (function_app.py converts it)."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=page_headers)
    mimetype: str = "text/html"


def _error(status: int, message: str) -> Page:
    return Page(status, '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>ExfilGuard report</title>'
                        f"</head><body><h1>ExfilGuard report</h1><p>{escape(message)}</p></body></html>\n")


def get(sweep_id: str | None, services: Callable[[], Services]) -> Page:
    """The page, 400 for a malformed sweep ID, 404 when there is no report yet, 503 when
    storage fails, 500 on a configuration error. Never raises."""
    return answered("report", "GET /api/report", _error, lambda: _get(sweep_id, services))


def _get(sweep_id: str | None, services: Callable[[], Services]) -> Page:
    if sweep_id is not None and not _SWEEP_ID.fullmatch(sweep_id):
        return _error(400, "sweep must be a sweep ID: 32 lowercase hex digits")
    svc = services()
    wanted = sweep_id or svc.state.latest_html_sweep()
    body = svc.state.read_html_report(wanted) if wanted else None
    if body is None:
        return _error(404, f"no HTML report for sweep {wanted}" if sweep_id else
                      "no sweep has stored a report yet; POST /api/evaluate {\"scope\": \"subscription\"} starts one")
    return Page(200, body)
