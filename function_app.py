"""ExfilGuard's Azure Functions entry points (Python v2 programming model): triggers only.

- ``on_resource_event`` (Event Grid): an ARM change in the subscription -> re-read, evaluate,
  fix or alert. The Bicep event subscription targets this name.
- ``evaluate`` (HTTP POST /api/evaluate, function key): re-evaluate one resource now, or queue
  a sweep of the subscription and answer 202 with a status URL.
- ``evaluation_status`` (HTTP GET /api/evaluate/status/{id}, function key): a queued sweep's
  progress, then its report.
- ``loopguard_release`` (HTTP POST /api/loopguard/release, function key): a person releases a
  resource the loop guard holds, so that ExfilGuard fixes it again.
- ``report`` (HTTP GET /api/report, function key): the latest sweep's HTML report
  (``?sweep=<id>`` for another), served with a Content-Security-Policy.
- ``sweep_queue`` (Storage queue): runs the sweeps the HTTP endpoint queued.
- ``scheduled_sweep`` (timer, ``EXFILGUARD_SWEEP_SCHEDULE``, default daily 02:00 UTC).
- ``alert_retry`` (timer, ``EXFILGUARD_ALERT_RETRY_SCHEDULE``, default every 5 minutes): resend
  failed alert deliveries.
- ``channel_check`` (timer, ``EXFILGUARD_CHANNEL_CHECK_SCHEDULE``, default daily 07:30 UTC): is the
  Teams webhook alive? If not, say so by email.
- ``dead_letter_replay`` (timer, ``EXFILGUARD_DEADLETTER_SCHEDULE``, default every 15 minutes): replay
  the events Event Grid dead-lettered into the Blob container.

Everything else lives in ``exfilguard.app`` and ``exfilguard.flows``. Nothing imported here at module level imports an
Azure management SDK, azure.identity, the storage SDKs, OpenTelemetry or rich: the host
imports this file on every cold start, and those load only when a handler needs them.
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

from exfilguard.adapters import telemetry
from exfilguard.app import deadletter, http_api, loopguard_api, report_page, sweep, upkeep
from exfilguard.core import settings as s
from exfilguard.flows.event import handle_event
from exfilguard.flows.runtime import Services, binding, services

app = func.FunctionApp()


def _services() -> Services:
    """Every trigger's way in: Azure Monitor is configured on first use, not at import."""
    telemetry.configure()
    return services()


def _http(answer: http_api.Answer) -> func.HttpResponse:
    return func.HttpResponse(answer.json_text(), status_code=answer.status, headers=answer.headers,
                             mimetype="application/json", charset="utf-8")


@app.function_name("on_resource_event")
@app.event_grid_trigger(arg_name="event")
def on_resource_event(event: func.EventGridEvent) -> None:
    outcome = handle_event(event, _services())
    logging.getLogger("exfilguard").info("event %s: %s %s", outcome.event_id, outcome.decision, outcome.reason)


@app.function_name("evaluate")
@app.route(route="evaluate", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def evaluate(req: func.HttpRequest) -> func.HttpResponse:
    return _http(http_api.evaluate(req.get_body(), req.headers, req.url, _services))


@app.function_name("evaluation_status")
@app.route(route="evaluate/status/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def evaluation_status(req: func.HttpRequest) -> func.HttpResponse:
    return _http(http_api.status(req.route_params.get("id", ""), _services))


@app.function_name("loopguard_release")
@app.route(route="loopguard/release", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def loopguard_release(req: func.HttpRequest) -> func.HttpResponse:
    return _http(loopguard_api.release(req.get_body(), req.headers, _services))


@app.function_name("report")
@app.route(route="report", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def report(req: func.HttpRequest) -> func.HttpResponse:
    page = report_page.get(req.params.get("sweep"), _services)
    return func.HttpResponse(page.body, status_code=page.status, headers=page.headers, mimetype=page.mimetype,
                             charset="utf-8")


@app.function_name("sweep_queue")
@app.queue_trigger(arg_name="msg", queue_name=binding(s.SWEEP_QUEUE, s.DEFAULT_SWEEP_QUEUE),
                   connection="AzureWebJobsStorage")
def sweep_queue(msg: func.QueueMessage) -> None:
    sweep.sweep_from_queue(msg.get_body(), _services())


@app.function_name("scheduled_sweep")
@app.schedule(schedule=binding(s.SWEEP_SCHEDULE, s.DEFAULT_SWEEP_SCHEDULE), arg_name="timer",
              run_on_startup=False, use_monitor=True)
def scheduled_sweep(timer: func.TimerRequest) -> None:
    if timer.past_due:
        logging.getLogger("exfilguard").warning("scheduled sweep is running late")
    doc = sweep.scheduled_sweep(_services())
    logging.getLogger("exfilguard").info("scheduled sweep: %s", json.dumps(doc.get("summary", {})))


@app.function_name("alert_retry")
@app.schedule(schedule=binding(s.ALERT_RETRY_SCHEDULE, s.DEFAULT_ALERT_RETRY_SCHEDULE), arg_name="timer",
              run_on_startup=False, use_monitor=True)
def alert_retry(timer: func.TimerRequest) -> None:
    upkeep.retry_alerts(_services())


@app.function_name("channel_check")
@app.schedule(schedule=binding(s.CHANNEL_CHECK_SCHEDULE, s.DEFAULT_CHANNEL_CHECK_SCHEDULE), arg_name="timer",
              run_on_startup=False, use_monitor=True)
def channel_check(timer: func.TimerRequest) -> None:
    result = upkeep.check_channels(_services())
    logging.getLogger("exfilguard").info("channel check: %s", result.words())


@app.function_name("dead_letter_replay")
@app.schedule(schedule=binding(s.DEADLETTER_SCHEDULE, s.DEFAULT_DEADLETTER_SCHEDULE), arg_name="timer",
              run_on_startup=False, use_monitor=True)
def dead_letter_replay(timer: func.TimerRequest) -> None:
    done = deadletter.drain(_services())
    logging.getLogger("exfilguard").info("dead letters: %d replayed, %d retried later, %d poisoned",
                                         len(done.replayed), len(done.retried), len(done.poisoned))
