"""The ``exfilguard`` command: ``scan``, ``rules``, ``notify`` and ``replay``.

Exit status (contracts.md): 0 no unexempted findings, 1 findings, 2 usage or input error.
Every expected failure becomes one line on stderr; a traceback would mean a bug.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from . import config as config_mod
from .engine import Evaluation
from .engine import scan as scan_bodies
from .sources import snapshot

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + exits 2; keep it to one line
        self.exit(EXIT_ERROR, f"exfilguard: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="exfilguard", description="Detect and fix data-exfiltration drift in Azure ML networks.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    scan = sub.add_parser("scan", help="evaluate a snapshot file or a live subscription")
    src = scan.add_mutually_exclusive_group(required=True)
    src.add_argument("--snapshot", metavar="FILE", help="ARM JSON snapshot (array, {value:[]}, or {data:[]})")
    src.add_argument("--subscription", metavar="ID", help="evaluate a live subscription through ARM")
    scan.add_argument("--format", choices=("table", "json", "sarif"),
                      help="output format (default: table on a terminal, json otherwise)")
    scan.add_argument("--config", metavar="FILE", help="YAML configuration file")
    scan.add_argument("--max-snapshot-mb", type=float, default=None, metavar="MB",
                      help=f"refuse snapshot files larger than this (default {snapshot.DEFAULT_MAX_MB:g})")
    scan.add_argument("--arm-endpoint", metavar="URL",
                      help="ARM endpoint (default $EXFILGUARD_ARM_ENDPOINT or https://management.azure.com)")
    scan.add_argument("--remediate", action="store_true", help="apply automatic fixes (live scans only)")
    scan.add_argument("--dry-run", action="store_true", help="print the ARM requests a fix would send; write nothing")

    sub.add_parser("rules", help="list the rules with severity and fix")

    replay = sub.add_parser("replay", help="run a saved (e.g. dead-lettered) event through the Function app's "
                                           "event path, with the app settings in the environment")
    replay.add_argument("file", metavar="FILE", help="an Event Grid or CloudEvents event, or a JSON array of them")

    notify = sub.add_parser("notify", help="preview or send alerts")
    try:
        from .alerts.cli import add_notify_arguments
    except ImportError:  # the alerts package is optional for the core
        add_notify_arguments = None
    if add_notify_arguments is not None:
        add_notify_arguments(notify)
    return p


def _load_config(path: str | None) -> config_mod.Config:
    try:
        return config_mod.load(path)
    except config_mod.ConfigError as exc:
        raise UsageError(str(exc)) from None


def _snapshot_evaluation(path: str, cfg: config_mod.Config, max_mb: float | None) -> Evaluation:
    try:
        bodies = snapshot.read(path, max_mb)
    except snapshot.SnapshotError as exc:
        raise UsageError(str(exc)) from None
    evaluation = scan_bodies(bodies, cfg, source=Path(path).name)[0]
    if bodies and not evaluation.resources and not evaluation.ignored:
        # Nothing in the file was a resource at all: "no findings" would read as "compliant".
        skipped = [n.message for n in evaluation.notices if n.kind == "skipped"]
        first = f" (first: {skipped[0]})" if skipped else ""
        raise UsageError(f"{path}: none of its {len(bodies)} item(s) could be read as an ARM resource{first}; "
                         "nothing was evaluated")
    return evaluation


def _emit(evaluation: Evaluation, fmt: str | None, out: TextIO, artifact: str, extra: dict | None = None) -> None:
    from . import report

    if fmt is None:
        fmt = "table" if out.isatty() else "json"
    if fmt == "json":
        report.write_json(report.to_json(evaluation, extra), out)
    elif fmt == "sarif":
        report.write_json(report.to_sarif(evaluation, artifact), out)
    else:
        report.write_table(evaluation, out)


def cmd_scan(args: argparse.Namespace, out: TextIO) -> int:
    cfg = _load_config(args.config)
    if args.snapshot:
        if args.remediate or args.dry_run:
            raise UsageError("--remediate and --dry-run need --subscription (a snapshot is never written to)")
        evaluation = _snapshot_evaluation(args.snapshot, cfg, args.max_snapshot_mb)
        _emit(evaluation, args.format, out, args.snapshot)
        return evaluation.exit_code()
    try:
        from .live import LiveScanError, run_live_scan
    except ImportError as exc:  # pragma: no cover - the live adapters ship with the package
        raise UsageError(f"live scans are unavailable: {exc}") from None
    try:
        evaluation, extra = run_live_scan(args, cfg)
    except LiveScanError as exc:
        raise UsageError(str(exc)) from None
    _emit(evaluation, args.format, out, f"azure://subscriptions/{args.subscription}", extra)
    if extra.get("incomplete"):  # part of the subscription could not be read: never report that as clean
        return EXIT_ERROR
    return evaluation.exit_code()


def cmd_rules(out: TextIO) -> int:
    from .rules import RULES

    if out.isatty():
        from rich.console import Console
        from rich.table import Table

        t = Table(title="ExfilGuard rules")
        for col in ("ID", "Severity", "Title", "Fix"):
            t.add_column(col)
        for r in RULES.values():
            t.add_row(r.id, r.severity.value, r.title, f"[{r.fix_kind.value}] {r.fix}")
        Console(file=out).print(t)
    else:
        for r in RULES.values():
            out.write(f"{r.id}\t{r.severity.value}\t{r.fix_kind.value}\t{r.title}\t{r.fix}\n")
    return EXIT_OK


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    """One line per event: ID, decision, reason. Exit 0 when every event was handled, 1 when
    one ended in an error (audited), 2 on a bad file or settings."""
    from .app import deadletter, runtime
    from .app.event_handler import RetryableEventError

    try:
        services = runtime.services()
    except config_mod.ConfigError as exc:
        raise UsageError(f"replay needs the Function app's settings: {exc}") from None
    try:
        outcomes = deadletter.replay_file(args.file, services)
    except OSError as exc:
        raise UsageError(f"{args.file}: cannot read it ({exc.strerror})") from None
    except deadletter.PoisonEvent as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    except RetryableEventError as exc:
        raise UsageError(f"{args.file}: not handled now, try again later: {exc}") from None
    for o in outcomes:
        out.write(f"{o.event_id}\t{o.decision}\t{o.reason}\n")
    return EXIT_FINDINGS if any(o.decision == "error" for o in outcomes) else EXIT_OK


def cmd_notify(args: argparse.Namespace) -> int:
    from .alerts.cli import run_notify

    findings = []
    if getattr(args, "snapshot", None):
        cfg = _load_config(getattr(args, "config", None))
        findings = list(_snapshot_evaluation(args.snapshot, cfg, None).open_findings)
    return run_notify(args, findings)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        if args.command == "scan":
            return cmd_scan(args, out)
        if args.command == "rules":
            return cmd_rules(out)
        if args.command == "replay":
            return cmd_replay(args, out)
        if args.command == "notify":
            return cmd_notify(args)
    except UsageError as exc:
        sys.stderr.write(f"exfilguard: error: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("exfilguard: interrupted\n")
        return EXIT_ERROR
    return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
