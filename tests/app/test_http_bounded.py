"""The HTTP path is bounded (issue: reliability, item 5).

The whole answer stays inside the HTTP budget (200 s by default; a few seconds here, set by
``EXFILGUARD_HTTP_BUDGET_SECONDS``), retries included: a server Retry-After longer than what
is left fails fast instead of sleeping, and a fix whose long-running operation outlives the
budget is answered 202 with a status URL that ends with the re-evaluated resource. Bodies
that do not parse, however they fail, are 400. A redirect to another host is refused.
"""

from __future__ import annotations

import pytest

from exfilguard.adapters.arm import ArmClient, ArmError
from exfilguard.core import ids
from tests import factory
from tests.alerts_support.receivers import LoopbackReceiver, Reply
from tests.function_support import NSG_WEU, running_app, sample


@pytest.mark.parametrize("body", [
    b'{"resourceId": ' + b"1" * 4301 + b"}",
    b'{"remediate": ' + b"9" * 5000 + b"}",
    b'{"resourceId": "x", "scope": -' + b"7" * 4400 + b"}",
])
def test_oversized_numbers_are_400_not_500(monkeypatch, body):
    with running_app(monkeypatch, EXFILGUARD_MAX_BODY_BYTES="65536") as app:
        status, answer = app.post(body)
        assert status == 400, answer
        assert "not acceptable JSON" in answer["error"] and "digits" in answer["error"]
        assert app.emulator.log == []


def test_retry_after_longer_than_the_budget_fails_fast_with_one_request(monkeypatch):
    with running_app(monkeypatch, sample("drifted-subscription.json"), EXFILGUARD_HTTP_BUDGET_SECONDS="5") as app:
        app.emulator.add_fault(429, method="GET", path="nsg-ml-westeurope", retry_after=600)
        status, body = app.post({"resourceId": NSG_WEU})
        assert status == 502, body
        assert "Retry-After" in body["error"] and "deadline" in body["error"]
        assert body["arm"]["code"] == "DeadlineExceeded"
        assert app.emulator.count(method="GET", path="nsg-ml-westeurope") == 1, "no retry after a refused wait"


def test_a_fix_whose_operation_outlives_the_budget_is_answered_202_with_a_status_url(monkeypatch):
    with running_app(monkeypatch, sample("drifted-subscription.json"), EXFILGUARD_HTTP_BUDGET_SECONDS="3") as app:
        app.emulator.lro_delay = 8.0  # ARM takes longer to apply the NSG than the budget allows
        status, body = app.post({"resourceId": NSG_WEU, "remediate": True})
        assert status == 202, body
        assert [w["status"] for w in body["actions"]["writes"]] == ["accepted"]
        assert body["statusUrl"].endswith(f"/api/evaluate/status/{body['id']}")
        assert len(app.emulator.writes()) == 1
        assert "fix-pending" in [r.decision for r in app.audit()]
        code, running, _ = app.status(body["id"])
        assert code == 202 and running["status"] == "running"
        assert "still applying" in running["progress"]["message"]
        app.emulator.lro_delay = 0.0
        assert app.run_queued_sweeps() == 1  # the follow-up re-evaluation
        code, done, _ = app.status(body["id"])
        assert code == 200 and done["status"] == "succeeded", done
        report = done["report"]
        assert ids.key(report["resourceId"]) == ids.key(NSG_WEU)
        assert [f for f in report["findings"] if f["fix"]["mode"] == "auto"] == [], "the fix is in place"


def test_a_redirect_to_another_host_is_refused_not_followed():
    nsg = factory.nsg_id("rg", "nsg-a")
    with LoopbackReceiver() as elsewhere:
        target = f"http://localhost:{elsewhere.port}{nsg}?api-version=2024-05-01"
        with LoopbackReceiver(default=Reply(302, {"Location": target})) as arm:
            with ArmClient(factory.SUB, arm.base_url, retry_total=0) as client, pytest.raises(ArmError) as caught:
                client.get(nsg)
            assert caught.value.code == "RedirectRefused"
            assert "another host" in caught.value.message and f"localhost:{elsewhere.port}" in caught.value.message
            with ArmClient(factory.SUB, arm.base_url, retry_total=0) as client, pytest.raises(ArmError) as caught:
                client.get(factory.ws_id("rg", "mlw"))  # the raw pipeline path too
            assert caught.value.code == "RedirectRefused"
        assert elsewhere.received == [], "nothing may be sent to the other host"
