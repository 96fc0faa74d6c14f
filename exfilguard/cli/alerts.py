"""``exfilguard notify``: see, preview or send the alerts a snapshot would raise, or test the set-up.

The lead's ``exfilguard.cli.main`` adds these arguments to its ``notify`` subparser, evaluates
``--snapshot`` and calls :func:`run_notify` with the findings. Exit status: 0 done, 1 a
delivery failed, 2 a setting or an argument is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from exfilguard.alerts.cards import encode
from exfilguard.alerts.dispatch import Dispatcher, EmailRouting, Planner
from exfilguard.alerts.ledger import MemoryLedger
from exfilguard.alerts.mail import build_mime
from exfilguard.alerts.message import ActionKind, Alert, TestAlert
from exfilguard.alerts.preview import write_previews
from exfilguard.core.findings import Finding
from exfilguard.core.settings import EMAIL_CHANNEL, TEAMS_WEBHOOK_URL, AlertSettings, SettingsError, alert_settings

PLACEHOLDER_SENDER = "exfilguard@example.invalid"
PLACEHOLDER_TO = ("security-team@example.invalid",)


def add_notify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--snapshot", metavar="FILE",
                        help="evaluate this snapshot and alert on its findings (one digest, as a sweep)")
    parser.add_argument("--channel", choices=("teams", "email"), action="append",
                        help="limit to this channel (repeatable); default: every configured channel, "
                             "or both for --dry-run when none is configured")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the exact payloads instead of sending: Teams JSON, email MIME")
    parser.add_argument("--out", metavar="DIR", type=Path,
                        help="write an HTML preview of each alert (and the digest) into DIR; sends nothing")
    parser.add_argument("--test", action="store_true",
                        help="send one test alert through the configured channels to check the set-up")


def _alerts(findings: Sequence[Finding], settings: AlertSettings) -> list[Alert]:
    # A snapshot has no change event and writes nothing: alert-only, or audit mode's would-fix.
    return [Alert.build(f, http_endpoint=settings.http_endpoint or None) for f in findings]


def _print_deliveries(planner: Planner, deliveries: list, settings: AlertSettings, out: TextIO,
                      err: TextIO) -> None:
    sender = settings.email_sender or PLACEHOLDER_SENDER
    for d in deliveries:
        if d.channel == "teams":
            body = encode(d.payload)
            print(f"# teams: {d.kind}, {len(body)} bytes, POST to {TEAMS_WEBHOOK_URL}", file=err)
            out.write(body.decode("utf-8") + "\n")
        else:
            print(f"# email: {d.kind} to {', '.join(d.payload['to'])}", file=err)
            out.write(build_mime(d.payload, sender).as_string() + "\n")
    out.flush()


def _dry_run(args: argparse.Namespace, alerts: list[Alert], settings: AlertSettings, wanted: tuple[str, ...],
             out: TextIO, err: TextIO) -> int:
    channels = wanted or settings.channels or ("teams", "email")
    routing = EmailRouting(settings.email_to, dict(settings.email_to_by_severity))
    if not routing.everyone():
        routing = EmailRouting(PLACEHOLDER_TO)
    planner = Planner(teams="teams" in channels, email=routing if "email" in channels else None)
    if args.test:
        deliveries = planner.test(TestAlert())
    else:
        deliveries = planner.digest([a for a in alerts if a.action.kind is not ActionKind.EXEMPT])
    if not deliveries:
        print("nothing to send: no unexempted findings", file=err)
    _print_deliveries(planner, deliveries, settings, out, err)
    return 0


def _unconfigured(wanted: tuple[str, ...], settings: AlertSettings) -> str | None:
    """Why the wanted channels cannot be used, or None when they can."""
    for channel in wanted:
        if channel not in settings.channels:
            setting = TEAMS_WEBHOOK_URL if channel == "teams" else EMAIL_CHANNEL
            return f"--channel {channel} is not configured (set {setting})"
    if not settings.channels:
        return f"no alert channel is configured (set {TEAMS_WEBHOOK_URL} and/or {EMAIL_CHANNEL})"
    return None


def _send(args: argparse.Namespace, alerts: list[Alert], settings: AlertSettings, wanted: tuple[str, ...],
          out: TextIO, err: TextIO) -> int:
    problem = _unconfigured(wanted, settings)
    if problem:
        print(f"exfilguard notify: {problem}", file=err)
        return 2
    dispatcher = Dispatcher.from_settings(settings, MemoryLedger(), channels=wanted or None)
    if args.test:
        outcomes = dispatcher.send_test()
    elif alerts:
        outcomes = dispatcher.send_digest(alerts)
    else:
        print("nothing to send: no findings", file=err)
        return 0
    for o in outcomes:
        out.write(json.dumps(o.to_json()) + "\n")
    return 0 if all(o.ok for o in outcomes) else 1


def run_notify(args: argparse.Namespace, findings: list[Finding], *, stdout: TextIO | None = None,
               stderr: TextIO | None = None) -> int:
    """Reads the alert settings from the environment once, then previews, prints or sends."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        settings = alert_settings(os.environ)
    except SettingsError as exc:
        print(f"exfilguard notify: {exc}", file=err)
        return 2
    wanted = tuple(dict.fromkeys(args.channel or ()))
    alerts = _alerts(findings, settings)
    if getattr(args, "out", None):
        pages = write_previews(alerts, Path(args.out))
        print(f"wrote {len(pages)} preview pages; open {pages[0]}", file=err)
    if getattr(args, "dry_run", False):
        return _dry_run(args, alerts, settings, wanted, out, err)
    if getattr(args, "out", None) and not args.test:
        return 0
    return _send(args, alerts, settings, wanted, out, err)
