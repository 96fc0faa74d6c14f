"""Sweeps that finish (issue: reliability, item 3), over the ARM emulator and Azurite.

One sweep at a time (a lease in storage; HTTP asks while one runs get 409 with its status
URL); a deadline with a checkpoint, so a sweep with too much to read pauses and the next run
resumes it; environment versions read once ever (checked versions kept in storage), only the
latest of each container, and not at all when the sweep is told to skip environments; a
sweep whose instance died is marked failed once its lease expires.
"""

from __future__ import annotations

import pytest

from exfilguard.adapters import sweepread
from exfilguard.core import ids
from tests import factory
from tests.function_support import WS_WEU, running_app, sample, snapshot_scan, sorted_findings

MCR = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
VIENNA = "viennaglobal.azurecr.io/azureml/base:old"


def _with_environments(n: int) -> list[dict]:
    data = sample("compliant-subscription.json")
    for i in range(n):
        # Two versions each: only the latest (2) is what the workspace uses and what ENV-01 checks.
        data.append(factory.environment(WS_WEU, f"env-{i:03d}", "1", VIENNA))
        data.append(factory.environment(WS_WEU, f"env-{i:03d}", "2", VIENNA if i % 10 == 0 else MCR))
    return data


def _version_gets(app) -> list[str]:
    return [r.path for r in app.emulator.records(kind="read", method="GET") if "/versions/" in r.path]


def _latest_only(data: list[dict]) -> list[dict]:
    return [b for b in data if not b["id"].endswith("/versions/1") or "/environments/env-" not in b["id"]]


class Killed(BaseException):
    """The instance stops (a scale-in, a crash): nothing after this point runs."""


def test_a_sweep_cut_by_its_deadline_resumes_and_reads_each_version_once(monkeypatch, tmp_path):
    data = _with_environments(60)
    monkeypatch.setattr(sweepread, "CHUNK", 10)
    with running_app(monkeypatch, data, mode="audit", EXFILGUARD_SWEEP_DEADLINE_SECONDS="1",
                     EXFILGUARD_ARM_READS_PER_SECOND="20") as app:
        app.timer()
        record = app.state.latest_sweep("timer")
        assert record.state == "running" and "paused" in record.progress, record
        runs = 1
        while app.state.get_sweep(record.sweep_id).state == "running":
            resumed = app.run_queued_sweeps()
            assert resumed >= 1, "a paused sweep queues its own resumption"
            runs += resumed
            assert runs < 40
        assert runs > 1
        done = app.state.get_sweep(record.sweep_id)
        assert done.state == "succeeded", done
        gets = _version_gets(app)
        assert len(gets) == len(set(gets)) == 62, "every latest version read once, across all the runs"
        assert not any(p.endswith("/versions/1") and "/env-" in p for p in gets), "only the latest versions"
        report = app.state.read_report(record.sweep_id)
        assert sorted_findings(report["findings"]) == snapshot_scan(_latest_only(data), tmp_path)
        assert sum(1 for f in report["findings"] if f["ruleId"] == "EXF-ENV-01") == 6
        assert "sweep-paused" in [r.decision for r in app.audit()]

        # Steady state: nothing changed, so no version is read again.
        app.emulator.reset_log()
        monkeypatch.setenv("EXFILGUARD_SWEEP_DEADLINE_SECONDS", "600")
        app.timer()
        steady = app.state.latest_sweep("timer")
        assert steady.state == "succeeded"
        assert _version_gets(app) == []
        assert sorted_findings(app.state.read_report(steady.sweep_id)["findings"]) == \
            sorted_findings(report["findings"])


def test_a_sweep_whose_instance_died_is_marked_failed_and_the_next_one_resumes(monkeypatch):
    from exfilguard.adapters import sweeplease

    data = _with_environments(30)
    monkeypatch.setattr(sweepread, "CHUNK", 10)
    with running_app(monkeypatch, data, mode="audit") as app:
        real = sweeplease.CheckedVersions.record
        recorded = []

        def dies_after_two_chunks(self, ws, bodies):
            bodies = list(bodies)
            if sum(recorded) >= 20:
                raise Killed
            recorded.append(len(bodies))
            return real(self, ws, bodies)

        monkeypatch.setattr(sweeplease.CheckedVersions, "record", dies_after_two_chunks)
        with pytest.raises(Killed):
            app.timer()
        dead = app.state.latest_sweep("timer")
        assert dead.state == "running", "the dead instance could not say anything"
        status, body = app.post({"scope": "subscription"})
        assert status == 409 and body["id"] == dead.sweep_id and body["statusUrl"].endswith(dead.sweep_id)

        monkeypatch.setattr(sweeplease.CheckedVersions, "record", real)
        monkeypatch.setattr(sweeplease, "DEFAULT_LEASE_S", 0.0)
        sweeplease.SweepLease(app.state).acquire(dead.sweep_id, 0.0)  # the lease runs out
        app.emulator.reset_log()
        app.timer()
        assert app.state.get_sweep(dead.sweep_id).state == "failed"
        assert "lease expired" in app.state.get_sweep(dead.sweep_id).error
        code, shown, _ = app.status(dead.sweep_id)
        assert code == 200 and shown["status"] == "failed"
        latest = app.state.latest_sweep("timer")
        assert latest.sweep_id != dead.sweep_id and latest.state == "succeeded"
        gets = _version_gets(app)
        assert sum(recorded) >= 20
        assert len(gets) == 32 - sum(recorded), "the versions checked before the crash are not read again"


def test_http_sweep_requests_while_one_runs_get_409_with_its_status_url(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        status, first = app.post({"scope": "subscription", "remediate": False})
        assert status == 202
        for _ in range(5):
            status, again = app.post({"scope": "subscription"})
            assert status == 409, again
            assert again["id"] == first["id"] and again["statusUrl"] == first["statusUrl"]
        assert app.run_queued_sweeps() == 1, "one sweep queued, not six"
        _, done, _ = app.status(first["id"])
        assert done["status"] == "succeeded"
        status, later = app.post({"scope": "subscription"})
        assert status == 202 and later["id"] != first["id"]


def test_environments_are_not_read_when_the_sweep_skips_them(monkeypatch):
    with running_app(monkeypatch, _with_environments(5), EXFILGUARD_SWEEP_ENVIRONMENTS="false") as app:
        app.timer()
        assert app.state.latest_sweep("timer").state == "succeeded"
        assert [r.path for r in app.emulator.records(kind="read") if "/environments" in r.path] == []


def test_sweep_settings_are_checked():
    from exfilguard.core.config import ConfigError
    from exfilguard.core.settings import sweep_settings

    assert sweep_settings({}).deadline_s == 780 and sweep_settings({}).environments
    with pytest.raises(ConfigError, match="EXFILGUARD_SWEEP_DEADLINE_SECONDS"):
        sweep_settings({"EXFILGUARD_SWEEP_DEADLINE_SECONDS": "3600"})
    assert ids.key("A") == "a"
