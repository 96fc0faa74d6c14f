"""Full sweeps of the guarded subscription: the nightly timer and the HTTP-requested one.

A sweep reads everything the baseline looks at (:func:`exfilguard.adapters.sweepread.read`), evaluates
it like a snapshot scan, acts like an event does (loop guard included), and stores the
report for ``GET /api/evaluate/status/{id}``. It also rebuilds the compute index from what
it read, which is what keeps NSG events cheap, and records every exemption it found expired:
an expired exemption's findings count again from that sweep on, so they are fixed or alerted
in the same run.

Progress is written to the sweep's status row at each step of the read (one resource type
at a time), which is what the status endpoint shows while it runs.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from exfilguard.adapters import telemetry
from exfilguard.adapters.state import AuditEntry, IndexedCompute, IndexedSubnet, SweepRecord, Trigger
from exfilguard.core import engine
from exfilguard.core.picture import Picture
from exfilguard.core.settings import SweepSettings
from exfilguard.flows import actions
from exfilguard.flows.runtime import Services
from exfilguard.flows.sweep import Swept, sweep
from exfilguard.render import report

log = telemetry.get_logger("exfilguard.sweep")


class BadSweepMessage(ValueError):
    """A queue message that is not a sweep request; never retried."""


def parse_message(body: bytes | str) -> tuple[str, bool]:
    """(sweep ID, what-if) from a queue message written by the HTTP endpoint."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadSweepMessage(f"sweep message is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadSweepMessage("sweep message must be a JSON object")
    sweep_id = doc.get("sweepId")
    what_if = doc.get("whatIf", False)
    if not isinstance(sweep_id, str) or len(sweep_id) != 32 or not all(c in "0123456789abcdef" for c in sweep_id):
        raise BadSweepMessage(f"sweep message has no valid sweepId: {sweep_id!r}")
    if not isinstance(what_if, bool):
        raise BadSweepMessage("sweep message whatIf must be true or false")
    return sweep_id, what_if


def index_rows(picture: Picture) -> tuple[list[IndexedCompute], list[IndexedSubnet]]:
    """The compute index as a full read shows it. An attached compute is indexed without its
    subnet: only ML computes make a subnet guarded."""
    computes = [IndexedCompute(c.id, c.workspace_id, (c.subnet_id if c.is_ml else None) or "")
                for c in picture.computes.values()]
    subnets = [IndexedSubnet(g.id, g.subnet.nsg_id or "", tuple(g.subnet.sep_ids))
               for g in picture.guarded_subnets.values() if g.subnet is not None]
    return computes, subnets


class SweepBusy(RuntimeError):
    """Another sweep holds the lease."""


def claim_for_http(services: Services, remediate: bool) -> tuple[SweepRecord | None, str]:
    """For ``POST /api/evaluate`` with a scope: (the new queued sweep, "") when none runs, else
    (None, the running sweep's ID). The lease is taken for the new sweep at once, so a burst
    of requests queues one sweep and the rest get 409."""
    from exfilguard.adapters.sweeplease import SweepLease

    sweep_id = uuid.uuid4().hex
    lease = SweepLease(services.state)
    ok, holder = lease.acquire(sweep_id)
    if not ok:
        assert holder is not None
        return None, holder.holder
    if holder is not None:
        _mark_dead(services, holder.holder)
    return services.state.create_sweep(trigger="http", remediate=remediate, sweep_id=sweep_id), ""


def _mark_dead(services: Services, sweep_id: str) -> None:
    """The sweep whose lease expired: its instance died. Marked failed, never left running."""
    record = services.state.get_sweep(sweep_id)
    if record is None or record.state not in ("queued", "running"):
        return
    log.error("sweep %s: its lease expired while %s; marked failed", sweep_id, record.state)
    services.state.update_sweep(replace(record, state="failed", finished=datetime.now(UTC),
                                        error="the instance running this sweep stopped (its lease expired); "
                                              "the next sweep covers the subscription"))
    services.state.audit(AuditEntry(trigger=record.trigger, decision="sweep-failed",
                                    resource_id=f"/subscriptions/{services.settings.subscription_id}",
                                    detail=f"sweep {sweep_id}: lease expired (instance stopped)"))


def check_dead(services: Services, record: SweepRecord) -> SweepRecord:
    """For the status endpoint: a queued or running sweep whose lease is gone or expired is dead."""
    from exfilguard.adapters.sweeplease import SweepLease

    if record.state not in ("queued", "running") or record.trigger == "http-write":
        return record
    current = SweepLease(services.state).current()
    if current is not None and current.holder == record.sweep_id and not current.expired:
        return record
    if current is None or current.holder != record.sweep_id:
        # Never held, or released without finishing: only dead once it is old enough to have run.
        age = (datetime.now(UTC) - record.requested).total_seconds()
        if age < 3600:
            return record
    _mark_dead(services, record.sweep_id)
    return services.state.get_sweep(record.sweep_id) or record


def run_sweep(services: Services, *, trigger: Trigger, what_if: bool = False,
              record: SweepRecord | None = None) -> dict[str, Any]:
    """Sweep, act, store the report; returns it. A failure is recorded on the sweep and raised,
    so the queue retries the message (and finally parks it in the poison queue) and the
    timer's failure shows in the function's log. One sweep at a time (the lease); a sweep
    that reaches its deadline before everything is read is paused and queued to resume."""
    from exfilguard.adapters.sweeplease import SweepLease

    started = time.perf_counter()
    knobs = services.settings.sweep
    lease = SweepLease(services.state)
    sweep_id = record.sweep_id if record is not None else uuid.uuid4().hex
    ok, holder = lease.acquire(sweep_id)
    if not ok:
        assert holder is not None
        raise SweepBusy(f"sweep {holder.holder} is running; sweep {sweep_id} waits for it")
    record = record or services.state.create_sweep(trigger=trigger, remediate=not what_if, sweep_id=sweep_id)
    if holder is not None:
        _mark_dead(services, holder.holder)
    record = replace(record, state="running", started=record.started or datetime.now(UTC),
                     progress="reading the subscription", error="")
    services.state.update_sweep(record)
    client = services.arm_client()
    run = _Run(services, lease, knobs, record,
               actions.Invocation(services=services, client=client, trigger=trigger, what_if=what_if,
                                  report_url=report_url(services, record.sweep_id)))
    outcome = "failed"
    with telemetry.bound(trigger=trigger, sweep_id=record.sweep_id):
        try:
            swept = sweep(run.read, services.settings.config, act=run.act, on_read_error=run.read_error,
                          source=f"subscription {services.settings.subscription_id}")
            doc = run.finished(swept) if swept is not None else run.paused()
            outcome = "succeeded" if swept is not None else "paused"
            return doc
        except Exception as exc:
            run.failed(exc)
            raise
        finally:
            client.close()
            telemetry.handler_latency(f"sweep:{trigger}", (time.perf_counter() - started) * 1000, outcome)


@dataclass
class _Run:
    """The Function app's adapters around one sweep: its status row (progress), the
    checkpointed read with a deadline, the compute index, the stored report, the lease."""

    services: Services
    lease: Any
    knobs: SweepSettings
    record: SweepRecord
    inv: actions.Invocation
    got: Any = None
    last_step: str = ""

    @property
    def subscription(self) -> str:
        return f"/subscriptions/{self.services.settings.subscription_id}"

    def progress(self, step: str, count: int) -> None:
        if step != self.last_step:
            self.last_step = step
            self.record = replace(self.record, progress=f"reading {step}", resources=count)
            self.services.state.update_sweep(self.record)

    def read_error(self, exc: Any) -> None:
        log.warning("sweep read error: %s", exc.message)

    def read(self, on_error: Any) -> list[dict] | None:
        """Everything, unless the deadline comes first (then None: the sweep pauses)."""
        from exfilguard.adapters.budget import Deadline
        from exfilguard.adapters.sweeplease import CheckedVersions
        from exfilguard.adapters.sweepread import read as sweep_read

        knobs = self.knobs
        self.got = sweep_read(self.inv.client, CheckedVersions(self.services.state) if knobs.environments else None,
                              versions="latest", deadline=Deadline(knobs.deadline_s),
                              environments=knobs.environments, workers=knobs.concurrency, on_error=on_error,
                              progress=lambda step, n: self.progress(step.rsplit("/", 1)[-1], n))
        return self.got.bodies if self.got.complete else None

    def act(self, swept: Swept) -> actions.Actions:
        evaluation = swept.evaluation
        self.record = replace(self.record, progress="evaluated; acting", resources=len(swept.bodies),
                              findings=len(evaluation.open_findings))
        self.services.state.update_sweep(self.record)
        computes, subnets = index_rows(swept.picture)
        self.services.state.rebuild_index(computes, subnets)
        done = actions.act(self.inv, swept.bodies, evaluation, swept.picture)
        for n in evaluation.notices:
            if n.kind == "expired-exemption":
                self.inv.audit("exemption-expired", resource_id=n.resource_id, detail=n.message)
        return done

    def paused(self) -> dict[str, Any]:
        """Queued to resume from the checkpoint; the lease stays this sweep's."""
        got, record, state = self.got, self.record, self.services.state
        paused = replace(record, progress=f"paused at the {self.knobs.deadline_s:g}s deadline: "
                                          f"{got.versions_known + got.versions_read} of {got.versions_total} "
                                          "environment versions checked; resuming")
        state.update_sweep(paused)
        state.enqueue_sweep({"sweepId": record.sweep_id, "whatIf": self.inv.what_if, "resume": True})
        self.lease.acquire(record.sweep_id)  # renewed: it is still this sweep's turn
        state.audit(AuditEntry(trigger=self.inv.trigger, decision="sweep-paused", resource_id=self.subscription,
                               outcome=f"{got.versions_read} versions read; {got.versions_left} left",
                               detail=f"sweep {record.sweep_id}: resumes from the queue"))
        log.info("sweep %s paused at its deadline; %d versions left", record.sweep_id, got.versions_left)
        return {"sweep": paused.to_json(), "paused": True,
                "armRequests": dict(sorted(self.inv.client.counts.items())),
                "versions": {"total": got.versions_total, "known": got.versions_known,
                             "read": got.versions_read, "left": got.versions_left}}

    def finished(self, swept: Swept) -> dict[str, Any]:
        """The report stored (JSON and HTML), the sweep marked done, the lease released."""
        got, state, evaluation, done = self.got, self.services.state, swept.evaluation, swept.done
        sweep_id = self.record.sweep_id
        finished = replace(self.record, state="succeeded", finished=datetime.now(UTC), progress="done")
        extra: dict[str, Any] = {"sweep": finished.to_json(),
                                 "mode": "what-if" if self.inv.what_if else self.services.settings.config.mode,
                                 "actions": done.to_json(), "armRequests": dict(sorted(self.inv.client.counts.items())),
                                 "environmentVersions": {"total": got.versions_total, "known": got.versions_known,
                                                         "read": got.versions_read}}
        if swept.read_errors:
            extra["incomplete"] = True
            extra["errors"] = swept.errors_json()
        doc = report.to_json(evaluation, extra)
        state.store_report(sweep_id, doc)
        _store_html(self.services, sweep_id, doc, swept.picture, swept.bodies, evaluation)
        state.update_sweep(finished)
        self.lease.release(sweep_id)
        self.inv.audit("swept", resource_id=self.subscription,
                       findings=actions.findings_json(evaluation.open_findings),
                       outcome=f"{len(swept.bodies)} resources, {len(evaluation.open_findings)} open finding(s), "
                               f"{len(done.writes)} fix(es) planned or written, {len(done.blocked)} blocked",
                       detail=f"sweep {sweep_id}")
        log.info("sweep %s: %d resources, %d open findings", sweep_id, len(swept.bodies),
                 len(evaluation.open_findings))
        return doc

    def failed(self, exc: Exception) -> None:
        """Recorded on the sweep and audited; the lease released for the next one."""
        sweep_id = self.record.sweep_id
        log.exception("sweep %s failed", sweep_id)
        telemetry.failure("sweep")
        self.services.state.update_sweep(replace(self.record, state="failed", finished=datetime.now(UTC),
                                                 error=f"{exc}"))
        self.lease.release(sweep_id)
        self.services.state.audit(AuditEntry(trigger=self.inv.trigger, decision="sweep-failed",
                                             resource_id=self.subscription, detail=f"sweep {sweep_id}: {exc}"))


def report_url(services: Services, sweep_id: str) -> str | None:
    """Where the sweep's HTML report will be served (``GET /api/report``), for the digest's
    link; None when the app does not know its own address (``EXFILGUARD_HTTP_ENDPOINT``)."""
    base = services.settings.http_endpoint
    return f"{base.rstrip('/')}/api/report?sweep={sweep_id}" if base else None


def _store_html(services: Services, sweep_id: str, doc: dict[str, Any], picture: Picture, bodies: list[dict],
                evaluation: engine.Evaluation) -> None:
    """The HTML report beside the JSON one. It is a view of that report: failing to write it
    is logged and counted, and the sweep (whose fixes and alerts are done) still succeeds."""
    from exfilguard.core import ids
    from exfilguard.render import html as htmlreport

    try:
        paths = htmlreport.network_paths(picture, bodies, relevant={ids.key(f.resource_id)
                                                                    for f in evaluation.findings})
        page = htmlreport.render(doc, paths, title="ExfilGuard sweep report")
        services.state.store_html_report(sweep_id, page)
    except Exception:
        log.exception("sweep %s: the HTML report could not be stored", sweep_id)
        telemetry.failure("report")


def sweep_from_queue(body: bytes | str, services: Services) -> dict[str, Any] | None:
    """The ``sweep_queue`` trigger. A malformed message is logged and audited, not retried;
    a message for a sweep that already finished (queues deliver at least once) is skipped."""
    try:
        sweep_id, what_if = parse_message(body)
    except BadSweepMessage as exc:
        log.error("%s", exc)
        services.state.audit(AuditEntry(trigger="sweep", decision="malformed", detail=str(exc)))
        return None
    record = services.state.get_sweep(sweep_id)
    if record is not None and record.state == "succeeded":
        log.info("sweep %s already finished; duplicate message ignored", sweep_id)
        return None
    resource_id = _followup_resource(body)
    if resource_id is not None and record is not None:  # an HTTP fix's follow-up, not a sweep
        from exfilguard.app.followup import run

        return run(services, record, resource_id)
    if record is not None and record.state == "failed":
        log.info("sweep %s was marked failed; message ignored", sweep_id)
        return None
    if record is None:
        record = services.state.create_sweep(trigger="http", remediate=not what_if, sweep_id=sweep_id)
    try:
        return run_sweep(services, trigger="sweep", what_if=what_if, record=record)
    except SweepBusy as exc:  # another sweep runs: come back when it is likely done
        log.info("%s", exc)
        services.state.queue().send_message(json.dumps({"sweepId": sweep_id, "whatIf": what_if}),
                                            visibility_timeout=120)
        return None


def _followup_resource(body: bytes | str) -> str | None:
    doc = json.loads(body)
    rid = doc.get("resourceId") if isinstance(doc, dict) else None
    return rid if isinstance(rid, str) and rid.startswith("/subscriptions/") else None


def scheduled_sweep(services: Services) -> dict[str, Any]:
    """The timer: resend alerts that failed earlier, then sweep."""
    try:
        outcomes = services.notifier().retry_pending()
        if outcomes:
            log.info("resent %d pending alert deliveries", len(outcomes))
    except Exception:  # alert retry must not cancel the sweep; the next timer run retries again
        log.exception("retrying pending alerts failed")
        telemetry.failure("alerts")
    try:
        return run_sweep(services, trigger="timer")
    except SweepBusy as exc:  # an asked-for sweep is running: it covers tonight's too
        log.info("scheduled sweep skipped: %s", exc)
        services.state.audit(AuditEntry(trigger="timer", decision="sweep-skipped", detail=str(exc)))
        return {"skipped": str(exc), "summary": {}}

