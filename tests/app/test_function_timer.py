"""The timer trigger: a full sweep over the ARM emulator, compared with a snapshot scan of the
same data, remediation through the same path as events, and expired exemptions."""

from __future__ import annotations

import json

import pytest

from exfilguard.core import ids
from exfilguard.flows.sweep import SweepError
from tests import factory
from tests.function_support import running_app, sample, snapshot_scan, sorted_findings

NSG_EUS = factory.nsg_id("rg-ml-eus", "nsg-ml-eastus")


def test_sweep_over_the_emulator_finds_what_a_snapshot_scan_finds(monkeypatch, tmp_path):
    data = sample("drifted-subscription.json")
    with running_app(monkeypatch, data, mode="audit") as app:
        app.timer()
        record = app.state.latest_sweep("timer")
        assert record is not None and record.state == "succeeded"
        report = app.state.read_report(record.sweep_id)
        assert sorted_findings(report["findings"]) == snapshot_scan(data, tmp_path)
        assert report["summary"]["findings"] == len([f for f in report["findings"] if not f["exempt"]])
        assert app.emulator.writes() == [], "audit mode writes nothing"
        assert {w["status"] for w in report["actions"]["writes"]} == {"planned"}
        posts = [json.dumps(p.json()) for p in app.teams.posts()]
        digests = [p for p in posts if "ExfilGuard sweep" in p]
        assert len(digests) == 1, "a sweep sends one digest, not one message per finding"
        # and one alert for the sample's exemption tag, seen for the first time (not in force: 2099)
        assert len(posts) == 2 and "Exemption set on ci-vendor-debug" in (set(posts) - set(digests)).pop()
        assert [r.decision for r in app.audit()].count("swept") == 1
        # The sweep filled the compute index.
        assert app.state.index_populated()
        assert len(app.state.computes()) == len([b for b in data if b["type"].endswith("/computes")])


def test_sweep_in_remediate_mode_fixes_everything_fixable(monkeypatch, tmp_path):
    data = sample("drifted-subscription.json")
    with running_app(monkeypatch, data, mode="remediate") as app:
        app.timer()
        first = app.state.read_report(app.state.latest_sweep("timer").sweep_id)
        applied = [w for w in first["actions"]["writes"] if w["status"] == "applied"]
        assert applied and all(w["status"] in ("applied", "planned") for w in first["actions"]["writes"]), \
            json.dumps(first["actions"]["writes"], indent=1)[:3000]
        assert len(app.emulator.writes()) == len(applied)
        fixed_rows = [r for r in app.audit() if r.decision == "fixed"]
        assert len(fixed_rows) == len(applied)

        status, after = app.post({"scope": "subscription", "remediate": False})
        assert status == 202
        app.run_queued_sweeps()
        _, done, _ = app.status(after["id"])
        left = done["report"]["findings"]
        assert [f for f in left if f["fix"]["mode"] == "auto" and not f["exempt"]] == []
        # Alert-only findings remain, and were alerted.
        assert any(f["fix"]["mode"] == "manual" for f in left)


def test_expired_exemption_is_rechecked_and_recorded(monkeypatch, tmp_path):
    data = sample("drifted-subscription.json")
    nsg = next(b for b in data if ids.key(b["id"]) == ids.key(NSG_EUS))
    nsg["tags"] = {"exfilguard-exempt": "EXF-NSG-04;until=2021-06-30;reason=vendor appliance"}
    with running_app(monkeypatch, data, mode="audit") as app:
        app.timer()
        report = app.state.read_report(app.state.latest_sweep("timer").sweep_id)
        nsg04 = [f for f in report["findings"] if f["ruleId"] == "EXF-NSG-04"]
        assert nsg04 and not nsg04[0]["exempt"], "an expired exemption exempts nothing"
        assert any(n["kind"] == "expired-exemption" and ids.key(n["resourceId"]) == ids.key(NSG_EUS)
                   for n in report["notices"])
        rows = [r for r in app.audit() if r.decision == "exemption-expired"]
        assert [ids.key(r.resource_id) for r in rows] == [ids.key(NSG_EUS)]
        assert "2021-06-30" in rows[0].detail
        assert sorted_findings(report["findings"]) == snapshot_scan(data, tmp_path)


def test_a_type_that_cannot_be_read_makes_the_report_incomplete_not_empty(monkeypatch):
    with running_app(monkeypatch, sample("drifted-subscription.json"), mode="audit") as app:
        app.emulator.add_fault(403, method="GET", path="/providers/Microsoft.Storage/storageAccounts")
        app.timer()
        record = app.state.latest_sweep("timer")
        report = app.state.read_report(record.sweep_id)
        assert record.state == "succeeded" and report["incomplete"] is True
        assert report["errors"][0]["missingPermission"] == "Microsoft.Storage/storageAccounts/read"
        assert any(f["ruleId"] == "EXF-NSG-01" for f in report["findings"])


def test_a_sweep_that_cannot_read_anything_is_recorded_as_failed_and_raised(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json"), mode="audit") as app:
        app.emulator.add_fault(403, method="GET")
        with pytest.raises(SweepError, match="nothing could be read"):
            app.timer()
        record = app.state.latest_sweep("timer")
        assert record.state == "failed" and "403" in record.error
        assert [r.decision for r in app.audit()] == ["sweep-failed"]
