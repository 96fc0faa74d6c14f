"""The ``exfilguard`` command: ``scan``, ``rules``, ``notify`` and ``replay``.

Exit status (docs/contracts.md): 0 no unexempted findings, 1 findings, 2 usage or input error.
Every expected failure becomes one line on stderr; a traceback would mean a bug.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from exfilguard.adapters import configfile, snapshot
from exfilguard.core import config as config_mod
from exfilguard.core.engine import Evaluation, evaluate
from exfilguard.core.picture import build

if TYPE_CHECKING:
    from exfilguard.render.html import NetworkPaths

EXIT_OK, EXIT_ERROR = 0, 2  # and 1: findings (Evaluation.exit_code), or replayed events that failed


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse prints usage + exits 2; keep it to one line
        self.exit(EXIT_ERROR, f"exfilguard: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="exfilguard", description="Detect and fix data-exfiltration drift in Azure ML networks.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    scan = sub.add_parser("scan", help="evaluate a snapshot file or a live subscription")
    src = scan.add_mutually_exclusive_group(required=True)
    src.add_argument("--snapshot", metavar="FILE", help="ARM JSON snapshot (array, {value:[]}, or {data:[]})")
    src.add_argument("--subscription", metavar="ID", help="evaluate a live subscription through ARM")
    scan.add_argument("--format", choices=("table", "json", "sarif", "html"),
                      help="output format (default: table on a terminal, json otherwise; html: one self-contained "
                           "page drawing each workspace's network path)")
    scan.add_argument("--config", metavar="FILE", help="YAML configuration file")
    scan.add_argument("--max-snapshot-mb", type=float, default=None, metavar="MB",
                      help=f"refuse snapshot files larger than this (default {snapshot.DEFAULT_MAX_MB:g})")
    scan.add_argument("--arm-endpoint", metavar="URL",
                      help="ARM endpoint (default $EXFILGUARD_ARM_ENDPOINT or https://management.azure.com)")
    scan.add_argument("--remediate", action="store_true", help="apply automatic fixes (live scans only)")
    scan.add_argument("--dry-run", action="store_true", help="print the ARM requests a fix would send; write nothing")
    scan.add_argument("--what-if", metavar="FILE", dest="what_if",
                      help="JSON of `az deployment group|sub what-if --no-pretty-print -o json`: report the "
                           "findings the deployment would introduce over the snapshot or subscription")
    scan.add_argument("--all", action="store_true", dest="all_findings",
                      help="with --what-if: show every finding after the deployment, not only introduced ones")

    rules = sub.add_parser("rules", help="list the rules with severity and fix")
    rules.add_argument("--format", choices=("table", "tsv", "markdown"),
                       help="table on a terminal, tab-separated otherwise; markdown is docs/rules.md")

    policy = sub.add_parser("policy", help="export the baseline as Azure Policy definitions")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True, parser_class=_Parser)
    export = policy_sub.add_parser("export", help="write policy definitions and an initiative to a folder")
    export.add_argument("--out", metavar="DIR", required=True, help="folder to write the JSON files to")
    export.add_argument("--effect", choices=("Audit", "Deny"), default="Audit",
                        help="default effect of every definition (default Audit)")

    replay = sub.add_parser("replay", help="run a saved (e.g. dead-lettered) event through the Function app's "
                                           "event path, with the app settings in the environment")
    replay.add_argument("file", metavar="FILE", help="an Event Grid or CloudEvents event, or a JSON array of them")

    from exfilguard.cli.alerts import add_notify_arguments

    add_notify_arguments(sub.add_parser("notify", help="preview or send alerts"))
    return p


def _load_config(path: str | None) -> config_mod.Config:
    try:
        return configfile.load_config(path)
    except config_mod.ConfigError as exc:
        raise UsageError(str(exc)) from None


def _snapshot_evaluation(path: str, cfg: config_mod.Config, max_mb: float | None) -> Evaluation:
    try:
        bodies = snapshot.read(path, max_mb)
    except snapshot.SnapshotError as exc:
        raise UsageError(str(exc)) from None
    evaluation = evaluate(build(bodies, cfg.guarded_subnets, source=Path(path).name), cfg)
    if bodies and not evaluation.resources and not evaluation.ignored:
        # Nothing in the file was a resource at all: "no findings" would read as "compliant".
        skipped = [n.message for n in evaluation.notices if n.kind == "skipped"]
        first = f" (first: {skipped[0]})" if skipped else ""
        raise UsageError(f"{path}: none of its {len(bodies)} item(s) could be read as an ARM resource{first}; "
                         "nothing was evaluated")
    return evaluation


def _snapshot_html(path: str, cfg: config_mod.Config, max_mb: float | None) -> tuple[Evaluation, NetworkPaths]:
    """A snapshot scan that also keeps each workspace's network path for the drawing."""
    from exfilguard.render.html import evaluate_with_paths

    try:
        bodies = snapshot.read(path, max_mb)
    except snapshot.SnapshotError as exc:
        raise UsageError(str(exc)) from None
    return evaluate_with_paths(bodies, cfg, source=Path(path).name)


def _source_date() -> datetime | None:
    """``SOURCE_DATE_EPOCH`` (the reproducible-builds convention) as the page's date, so the same
    snapshot makes the same page byte for byte; None (now) when unset or not a number."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return datetime.fromtimestamp(int(raw), UTC) if raw.isdigit() else None


def _emit(evaluation: Evaluation, fmt: str | None, out: TextIO, artifact: str, extra: dict | None = None,
          paths: NetworkPaths | None = None, sarif_files: tuple[str, ...] = ()) -> None:
    from exfilguard.render import report

    if fmt is None:
        fmt = "table" if out.isatty() else "json"
    if fmt == "html":
        from exfilguard.render.html import render

        out.write(render(report.to_json(evaluation, extra), paths, generated=_source_date(),
                         source=Path(artifact).name if not artifact.startswith("azure:") else artifact))
    elif fmt == "json":
        report.write_json(report.to_json(evaluation, extra), out)
    elif fmt == "sarif":
        from exfilguard.render.sarif_places import sarif_options

        places = sarif_options(*sarif_files) if sarif_files else {}
        report.write_json(report.to_sarif(evaluation, artifact, **places), out)
    else:
        report.write_table(evaluation, out)


def cmd_scan(args: argparse.Namespace, out: TextIO) -> int:
    cfg = _load_config(args.config)
    if getattr(args, "what_if", None):
        return cmd_what_if(args, cfg, out)
    if getattr(args, "all_findings", False):
        raise UsageError("--all needs --what-if (a scan always shows every finding)")
    if args.snapshot:
        if args.remediate or args.dry_run:
            raise UsageError("--remediate and --dry-run need --subscription (a snapshot is never written to)")
        if args.format == "html":
            evaluation, drawn = _snapshot_html(args.snapshot, cfg, args.max_snapshot_mb)
            _emit(evaluation, args.format, out, args.snapshot, paths=drawn)
            return evaluation.exit_code()
        evaluation = _snapshot_evaluation(args.snapshot, cfg, args.max_snapshot_mb)
        _emit(evaluation, args.format, out, args.snapshot, sarif_files=(args.snapshot,))
        return evaluation.exit_code()
    try:
        from exfilguard.flows.live import LiveScanError, run_live_scan
    except ImportError as exc:  # pragma: no cover - the live adapters ship with the package
        raise UsageError(f"live scans are unavailable: {exc}") from None
    kept: list[tuple[Any, list[dict]]] = []  # the picture and bodies the live scan read, for the HTML drawing
    try:
        evaluation, extra = run_live_scan(args, cfg, keep=(lambda picture, bodies: kept.append((picture, bodies)))
                                          if args.format == "html" else None)
    except LiveScanError as exc:
        raise UsageError(str(exc)) from None
    drawing: NetworkPaths | None = None
    if kept:
        from exfilguard.core import ids
        from exfilguard.render.html import network_paths

        drawing = network_paths(kept[0][0], kept[0][1], relevant={ids.key(f.resource_id) for f in evaluation.findings})
        kept.clear()
    _emit(evaluation, args.format, out, f"azure://subscriptions/{args.subscription}", extra, paths=drawing)
    if extra.get("incomplete"):  # part of the subscription could not be read: never report that as clean
        return EXIT_ERROR
    return evaluation.exit_code()


def cmd_what_if(args: argparse.Namespace, cfg: config_mod.Config, out: TextIO) -> int:
    """``scan --what-if``: exit 1 only when the deployment introduces a finding."""
    from exfilguard.flows import whatif

    if args.remediate or args.dry_run:
        raise UsageError("--remediate and --dry-run cannot be combined with --what-if (nothing is deployed yet)")
    try:
        plan, _text = whatif.load(args.what_if, args.max_snapshot_mb)
        base, base_extra = whatif.base_bodies(args, args.max_snapshot_mb)
    except (whatif.WhatIfError, snapshot.SnapshotError) as exc:
        raise UsageError(str(exc)) from None
    outcome = whatif.evaluate(base, plan, cfg, source=Path(args.what_if).name)
    extra = {**whatif.summary_extra(plan, outcome, args.what_if, args.all_findings), **base_extra}
    files = (args.what_if, args.snapshot) if args.snapshot else (args.what_if,)
    paths = None
    if args.format == "html":  # draw the network paths as they would be after the deployment
        from exfilguard.render.html import evaluate_with_paths

        paths = evaluate_with_paths(outcome.after_bodies, cfg, source=Path(args.what_if).name)[1]
    _emit(outcome.report(args.all_findings), args.format, out, args.what_if, extra, sarif_files=files, paths=paths)
    if base_extra.get("incomplete"):  # part of the subscription could not be read: never report that as clean
        return EXIT_ERROR
    return outcome.exit_code()


def cmd_policy(args: argparse.Namespace, out: TextIO) -> int:
    from exfilguard.render.policy_export import PolicyExportError, export

    try:
        written = export(args.out, effect=args.effect)
    except PolicyExportError as exc:
        raise UsageError(str(exc)) from None
    for path in written:
        out.write(f"{path}\n")
    return EXIT_OK


def cmd_rules(out: TextIO, fmt: str | None = None) -> int:
    from exfilguard.core.catalog import RULES

    fmt = fmt or ("table" if out.isatty() else "tsv")
    if fmt == "markdown":
        from exfilguard.render.rulesdoc import render

        out.write(render())
    elif fmt == "table":
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
    from exfilguard.flows import replay, runtime
    from exfilguard.flows.event import RetryableEventError

    try:
        services = runtime.services()
    except config_mod.ConfigError as exc:
        raise UsageError(f"replay needs the Function app's settings: {exc}") from None
    try:
        outcomes = replay.replay_file(args.file, services)
    except OSError as exc:
        raise UsageError(f"{args.file}: cannot read it ({exc.strerror})") from None
    except replay.PoisonEvent as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    except RetryableEventError as exc:
        raise UsageError(f"{args.file}: not handled now, try again later: {exc}") from None
    for o in outcomes:
        out.write(f"{o.event_id}\t{o.decision}\t{o.reason}\n")
    return 1 if any(o.decision == "error" for o in outcomes) else EXIT_OK


def cmd_notify(args: argparse.Namespace) -> int:
    from exfilguard.cli.alerts import run_notify

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
            return cmd_rules(out, args.format)
        if args.command == "replay":
            return cmd_replay(args, out)
        if args.command == "notify":
            return cmd_notify(args)
        if args.command == "policy":
            return cmd_policy(args, out)
    except UsageError as exc:
        sys.stderr.write(f"exfilguard: error: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("exfilguard: interrupted\n")
        return EXIT_ERROR
    return EXIT_ERROR
