"""HTTP fixes whose ARM operation outlives the HTTP answer.

``POST /api/evaluate`` answers within 200 s whatever ARM does. When a fix was accepted by ARM
but its long-running operation is still going at the deadline, the answer is ``202`` with a
status URL (the same ``/api/evaluate/status/{id}`` sweeps use) instead of a wait the host
would cut off at 230 s. A queue message asks for a re-evaluation of the resource; the
``sweep_queue`` function runs it and stores its report under that ID, so the status URL
ends with what the resource looks like once ARM is done.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from exfilguard.adapters import telemetry
from exfilguard.adapters.state import AuditEntry, SweepRecord
from exfilguard.flows.runtime import Services

log = telemetry.get_logger("exfilguard.followup")


def accepted(svc: Services, resource_id: str, body: dict[str, Any], url: str, requested_by: str = "") -> Any:
    """The 202 answer for an accepted fix, with the follow-up queued."""
    from exfilguard.app.http_api import Answer, _status_url

    record = svc.state.create_sweep(trigger="http-write", remediate=True)
    record = replace(record, state="running", started=datetime.now(UTC),
                     progress=f"ARM accepted the fix of {resource_id} and is still applying it; the resource is "
                              "evaluated again once it is done")
    svc.state.update_sweep(record)
    svc.state.enqueue_sweep({"sweepId": record.sweep_id, "whatIf": False, "resourceId": resource_id})
    status_url = _status_url(url, record.sweep_id)
    svc.state.audit(AuditEntry(trigger="http", decision="fix-pending", resource_id=resource_id,
                               outcome=f"answered 202; follow-up {record.sweep_id}", actor=requested_by))
    return Answer(202, {**body, "id": record.sweep_id, "status": record.state, "statusUrl": status_url},
                  {"Location": status_url, "Retry-After": "30"})


def run(svc: Services, record: SweepRecord, resource_id: str) -> dict[str, Any]:
    """The queued follow-up: evaluate the resource again (no time pressure now) and store the
    answer as the report the status URL shows."""
    from exfilguard.app.http_api import EvaluateRequest, _evaluate_resource
    from exfilguard.core import ids

    answer = _evaluate_resource(svc, EvaluateRequest(ids.parse(resource_id), True),
                                f"follow-up {record.sweep_id} of an HTTP fix ARM had accepted")
    ok = answer.status == 200
    doc = dict(answer.body)
    svc.state.store_report(record.sweep_id, doc)
    svc.state.update_sweep(replace(record, state="succeeded" if ok else "failed", finished=datetime.now(UTC),
                                   progress="done" if ok else "re-evaluation failed",
                                   error="" if ok else str(doc.get("error", ""))[:2000]))
    log.info("follow-up %s of %s: %s", record.sweep_id, resource_id, answer.status)
    return doc
