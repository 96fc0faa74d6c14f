"""``exfilguard notify`` through run_notify, with hand-built findings (the lead's CLI evaluates
the snapshot and passes them in)."""

from __future__ import annotations

import argparse
import io
import json
from email import policy
from email.parser import Parser

import jsonschema
import pytest

from exfilguard.cli.alerts import add_notify_arguments, run_notify
from tests.alerts_support.receivers import LoopbackReceiver, Reply
from tests.alerts_support.samples import card_schema, compute_finding, exempt_finding, nsg_finding
from tests.alerts_support.smtp_server import LoopbackSmtp

pytestmark = pytest.mark.usefixtures("clean_env")

FINDINGS = [nsg_finding(), compute_finding(), exempt_finding()]


def notify(*argv: str, findings=FINDINGS) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="exfilguard notify")
    add_notify_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    code = run_notify(parser.parse_args(list(argv)), list(findings), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_dry_run_teams_prints_the_exact_json_that_would_be_posted():
    code, out, err = notify("--snapshot", "s.json", "--channel", "teams", "--dry-run")
    assert code == 0
    (line,) = out.splitlines()
    payload = json.loads(line)
    card = payload["attachments"][0]["content"]
    jsonschema.Draft6Validator(card_schema()).validate(card)
    text = json.dumps(card)
    assert "EXF-NSG-01" in text and "EXF-CMP-02" in text and "would fix" in text and "alert only" in text
    assert "EXF-NSG-04" not in text  # exempt: not alerted
    assert "# teams: digest" in err and "EXFILGUARD_TEAMS_WEBHOOK_URL" in err
    assert len(line.encode()) == int(err.split(" bytes")[0].rsplit(" ", 1)[-1])


def test_dry_run_email_prints_the_mime_message(monkeypatch):
    monkeypatch.setenv("EXFILGUARD_EMAIL_TO", "ml-team@contoso.com")
    monkeypatch.setenv("EXFILGUARD_EMAIL_TO_CRITICAL", "oncall@contoso.com")
    code, out, err = notify("--snapshot", "s.json", "--channel", "email", "--dry-run")
    assert code == 0
    assert out.startswith("Subject: ")
    raw = [m if i == 0 else "Subject: " + m for i, m in enumerate(out.split("\nSubject: "))]
    messages = [Parser(policy=policy.default).parsestr(m) for m in raw]
    assert [m["To"] for m in messages] == ["oncall@contoso.com", "ml-team@contoso.com"]  # by severity
    for m in messages:
        assert m.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in m.iter_parts()] == ["text/plain", "text/html"]
    assert "EXF-NSG-01" in messages[0].get_body(("plain",)).get_content()
    assert "EXF-CMP-02" in messages[1].get_body(("html",)).get_content()
    assert "# email: digest to oncall@contoso.com" in err


def test_dry_run_without_configuration_shows_both_channels_with_placeholders():
    code, out, _ = notify("--snapshot", "s.json", "--dry-run")
    assert code == 0
    assert out.startswith('{"type":"message"')
    assert "To: security-team@example.invalid" in out and "From: exfilguard@example.invalid" in out


def test_out_writes_previews_and_sends_nothing(monkeypatch, tmp_path):
    with LoopbackReceiver() as rx:
        monkeypatch.setenv("EXFILGUARD_TEAMS_WEBHOOK_URL", f"{rx.base_url}/hook?sig=x")
        code, out, err = notify("--snapshot", "s.json", "--out", str(tmp_path / "previews"))
    assert code == 0 and rx.posts() == [] and out == ""
    assert "wrote 5 preview pages" in err
    names = sorted(p.name for p in (tmp_path / "previews").iterdir())
    assert names == ["001-EXF-NSG-01-nsg_ml_training.html", "002-EXF-CMP-02-gpu-cluster.html",
                     "003-EXF-NSG-04-nsg_ml_training.html", "digest.html", "index.html"]
    assert "Exempt until 2025-06-30" in (tmp_path / "previews" / "003-EXF-NSG-04-nsg_ml_training.html").read_text()


def test_test_sends_one_test_alert_through_each_configured_channel(monkeypatch):
    with LoopbackReceiver() as rx, LoopbackSmtp() as smtp:
        monkeypatch.setenv("EXFILGUARD_TEAMS_WEBHOOK_URL", f"{rx.base_url}/hook?sig=x")
        monkeypatch.setenv("EXFILGUARD_EMAIL_CHANNEL", "smtp")
        monkeypatch.setenv("EXFILGUARD_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("EXFILGUARD_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("EXFILGUARD_SMTP_STARTTLS", "false")
        monkeypatch.setenv("EXFILGUARD_EMAIL_SENDER", "exfilguard@contoso.com")
        monkeypatch.setenv("EXFILGUARD_EMAIL_TO", "ml-team@contoso.com")
        code, out, _ = notify("--test", findings=[])
    assert code == 0
    assert [json.loads(x)["status"] for x in out.splitlines()] == ["sent", "sent"]
    (post,) = rx.posts()
    assert "ExfilGuard test alert" in post.body.decode()
    (mail,) = smtp.received
    assert mail.message["Subject"] == "[ExfilGuard] Test alert: the alert channel works"


def test_sending_a_snapshot_posts_one_digest_and_fails_loudly_when_rejected(monkeypatch):
    with LoopbackReceiver(script=[Reply(202)], default=Reply(403)) as rx:
        monkeypatch.setenv("EXFILGUARD_TEAMS_WEBHOOK_URL", f"{rx.base_url}/hook?sig=x")
        ok, out, _ = notify("--snapshot", "s.json")
        failed, out2, _ = notify("--snapshot", "s.json")
    sent = [json.loads(x) for x in out.splitlines()]
    assert ok == 0 and [(o["kind"], o["status"]) for o in sent] == [("alert", "exempt"), ("digest", "sent")]
    assert failed == 1 and "HTTP 403" in out2
    assert len(rx.posts()) == 2


def test_bad_setting_exits_2_naming_it(monkeypatch):
    monkeypatch.setenv("EXFILGUARD_EMAIL_CHANNEL", "fax")
    code, _, err = notify("--snapshot", "s.json", "--dry-run")
    assert code == 2 and "EXFILGUARD_EMAIL_CHANNEL" in err


def test_unconfigured_channel_exits_2(monkeypatch):
    code, _, err = notify("--snapshot", "s.json", "--channel", "email")
    assert code == 2 and "EXFILGUARD_EMAIL_CHANNEL" in err
