"""``GET /api/report``: the latest sweep's HTML report, stored with its JSON report, served
under a Content-Security-Policy, and linked from the sweep's digest."""

from __future__ import annotations

import json
import random

import azure.functions as func

from exfilguard.adapters.state import StateError
from exfilguard.core import ids
from exfilguard.render.html import CSP
from tests.function_support import running_app, sample

ENDPOINT = "https://exfilguard-test.azurewebsites.net"


def get_report(app, sweep: str | None = None) -> func.HttpResponse:
    params = {"sweep": sweep} if sweep is not None else {}
    req = func.HttpRequest("GET", "http://localhost:7071/api/report", params=params, body=b"")
    return app.fns["report"](req)


def test_sweep_stores_its_html_report_and_the_digest_links_to_it(monkeypatch):
    with running_app(monkeypatch, sample("drifted-subscription.json"), mode="audit") as app:
        assert get_report(app).status_code == 404, "no sweep yet"
        app.timer()
        record = app.state.latest_sweep("timer")
        doc = app.state.read_report(record.sweep_id)
        resp = get_report(app)
        assert resp.status_code == 200
        assert resp.mimetype == "text/html"
        policy = resp.headers["Content-Security-Policy"]
        assert policy == f"{CSP}; frame-ancestors 'none'" and "default-src 'none'" in policy
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        page = resp.get_body().decode("utf-8")
        assert page.startswith("<!DOCTYPE html>") and f"sweep {record.sweep_id} (timer)" in page
        for finding in doc["findings"]:
            assert f'<span class="rule">{finding["ruleId"]}</span>' in page
            assert f'<code class="rid">{finding["resourceId"]}</code>' in page
        drawn = {ids.key(x["resourceId"]).split("/computes/")[0] for x in doc["findings"]
                 if "/workspaces/" in ids.key(x["resourceId"])}
        assert page.count('<section class="ws ') >= len(drawn) >= 2  # every workspace with a finding is drawn
        assert get_report(app, record.sweep_id).get_body() == resp.get_body()

        link = f"{ENDPOINT}/api/report?sweep={record.sweep_id}"
        # The sweep's digest (the other posts: one alert per exemption tag seen for the first time).
        cards = [json.dumps(p.json()) for p in app.teams.posts()]
        [card] = [c for c in cards if "EXEMPTION" not in c]
        assert link in card and "Open the full report" in card


def test_a_newer_sweep_replaces_the_latest_page(monkeypatch):
    with running_app(monkeypatch, sample("drifted-subscription.json"), mode="audit") as app:
        app.timer()
        first = app.state.latest_sweep("timer").sweep_id
        status, queued = app.post({"scope": "subscription", "remediate": False})
        assert status == 202
        app.run_queued_sweeps()
        page = get_report(app).get_body().decode()
        assert f"sweep {queued['id']} (http)" in page and "mode: what-if" in page
        assert f"sweep {first} (timer)" in get_report(app, first).get_body().decode()


def test_bad_and_unknown_sweep_ids(monkeypatch):
    with running_app(monkeypatch, sample("compliant-subscription.json")) as app:
        bad = get_report(app, "../../etc")
        assert bad.status_code == 400 and b"32 lowercase hex digits" in bad.get_body()
        assert bad.headers["Content-Security-Policy"].startswith("default-src 'none'")
        unknown = get_report(app, "0" * 32)
        assert unknown.status_code == 404 and b"no HTML report for sweep" in unknown.get_body()


def test_large_page_round_trips_through_table_storage(monkeypatch):
    rng = random.Random(20)
    page = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz<>&\"' 0123456789é→") for _ in range(2_500_000))
    with running_app(monkeypatch, []) as app:
        app.state.store_html_report("a" * 32, page)  # more than one transaction of chunks
        assert app.state.read_html_report("a" * 32) == page
        assert app.state.latest_html_sweep() == "a" * 32
        app.state.store_html_report("a" * 32, "short")  # rewritten smaller: old chunks are not read
        assert app.state.read_html_report("a" * 32) == "short"
        assert app.state.read_html_report("b" * 32) is None


def test_failing_to_store_the_page_does_not_fail_the_sweep(monkeypatch):
    with running_app(monkeypatch, sample("drifted-subscription.json"), mode="audit") as app:
        def refuse(self, sweep_id, page):
            raise StateError("table: storing the HTML report failed (503)")

        monkeypatch.setattr(type(app.state), "store_html_report", refuse)
        app.timer()
        record = app.state.latest_sweep("timer")
        assert record.state == "succeeded" and app.state.read_report(record.sweep_id)["findings"]
        assert get_report(app).status_code == 404


def test_storage_down_is_503(monkeypatch):
    with running_app(monkeypatch, []) as app:
        def down(self):
            raise StateError("table exfilguardsweeps: read failed (connection refused)")

        monkeypatch.setattr(type(app.state), "latest_html_sweep", down)
        resp = get_report(app)
        assert resp.status_code == 503 and b"state storage is unavailable" in resp.get_body()
