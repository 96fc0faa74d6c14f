"""Structured logs that always carry the event and correlation IDs, and the product's metrics.

An operator chasing "why did ExfilGuard change my NSG at 14:02" starts from an Activity Log
correlation ID or an Event Grid event ID; every log line written while handling that event
carries both, in the message (the Functions host shows only the message) and as attributes
(Application Insights shows them as customDimensions).

Metrics and traces go to Azure Monitor only when ``APPLICATIONINSIGHTS_CONNECTION_STRING``
is set; the OpenTelemetry distro is imported then and only then, because it is the heaviest
import in the app and most of a cold start otherwise. Without it, the metric calls here are
no-ops and logging is plain Python logging, which the Functions host collects anyway.
Entra-only ingestion is configured by ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING``, which
the exporter reads itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
LOGGER = "exfilguard"

_fields: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("exfilguard_log_fields", default=None)
_lock = threading.Lock()
_instruments: dict[str, Any] | None = None
_configured = False


# ---------------------------------------------------------------------------------- logging
@contextlib.contextmanager
def bound(**fields: str) -> Iterator[None]:
    """Attach fields (``event_id``, ``correlation_id``, ``trigger``...) to every log line
    written inside the block, in this thread or task."""
    merged = {**(_fields.get() or {}), **{k: v for k, v in fields.items() if v}}
    token = _fields.set(merged)
    try:
        yield
    finally:
        _fields.reset(token)


class _ContextAdapter(logging.LoggerAdapter):
    """Prefixes the bound IDs to the message and passes them as record attributes."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        fields = _fields.get()
        if fields:
            prefix = " ".join(f"{k}={v}" for k, v in fields.items())
            msg = f"[{prefix}] {msg}"
            extra = dict(kwargs.get("extra") or {})
            extra.update({f"exfilguard.{k}": v for k, v in fields.items()})
            kwargs["extra"] = extra
        return msg, kwargs


def get_logger(name: str) -> logging.LoggerAdapter:
    return _ContextAdapter(logging.getLogger(name), {})


# ---------------------------------------------------------------------------------- set-up
def configure(environ: Mapping[str, str] | None = None, *, metric_readers: Sequence[Any] | None = None) -> bool:
    """Turn on Azure Monitor once per process when the connection string is set.

    ``metric_readers`` adds readers next to the Azure Monitor exporter (tests read metrics
    back through an in-memory reader). Returns whether Azure Monitor is on.
    """
    global _configured, _instruments  # noqa: PLW0603 - Azure Monitor is set up once per process
    env = os.environ if environ is None else environ
    with _lock:
        if _configured:
            return _instruments is not None
        _configured = True
        conn = (env.get(CONNECTION_STRING) or "").strip()
        if not conn:
            return False
        from azure.monitor.opentelemetry import configure_azure_monitor
        from opentelemetry import metrics

        # Live metrics would hold a second connection open per instance for a view nobody asked for.
        kwargs: dict[str, Any] = {"connection_string": conn, "logger_name": LOGGER, "enable_live_metrics": False}
        if metric_readers:
            kwargs["metric_readers"] = list(metric_readers)
        configure_azure_monitor(**kwargs)
        meter = metrics.get_meter("exfilguard")
        _instruments = {
            "events": meter.create_counter("exfilguard.events", description="Events handled, by decision"),
            "findings": meter.create_counter("exfilguard.findings", description="Open findings, by rule"),
            "fixes": meter.create_counter("exfilguard.fixes", description="Fix writes, by outcome and rule"),
            "failures": meter.create_counter("exfilguard.failures", description="Failures, by kind"),
            "latency": meter.create_histogram("exfilguard.handler.duration", unit="ms",
                                              description="Handler latency, by handler and outcome"),
        }
        return True


def _add(name: str, value: float, attributes: dict[str, str]) -> None:
    instruments = _instruments
    if instruments is not None:
        instruments[name].add(value, attributes)


# ---------------------------------------------------------------------------------- metrics
def event_decision(decision: str) -> None:
    _add("events", 1, {"decision": decision})


def findings(rule_ids: Sequence[str]) -> None:
    """One count per open finding, by rule."""
    counts: dict[str, int] = {}
    for r in rule_ids:
        counts[r] = counts.get(r, 0) + 1
    for rule, n in counts.items():
        _add("findings", n, {"rule": rule})


def fix(outcome: str, rule_ids: Sequence[str]) -> None:
    for rule in rule_ids or ("",):
        _add("fixes", 1, {"outcome": outcome, "rule": rule})


def failure(kind: str) -> None:
    _add("failures", 1, {"kind": kind})


def handler_latency(handler: str, milliseconds: float, outcome: str) -> None:
    instruments = _instruments
    if instruments is not None:
        instruments["latency"].record(milliseconds, {"handler": handler, "outcome": outcome})
