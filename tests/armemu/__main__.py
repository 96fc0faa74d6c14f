"""``python -m tests.armemu --snapshot FILE``: serve a snapshot until SIGTERM/SIGINT.

The first stdout line is the URL, so a parent process can read it and go.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from tests.armemu.emulator import ArmEmulator
from tests.armemu.snapshot import SnapshotError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.armemu", description=__doc__)
    parser.add_argument("--snapshot", required=True, help="ARM resources: array, {value: [...]} or {data: [...]}")
    parser.add_argument("--port", type=int, default=0, help="loopback port (0: any free port)")
    parser.add_argument("--lro-delay", type=float, default=0.0, help="seconds an LRO stays InProgress")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every ARM request")
    parser.add_argument("--page-size", type=int, default=50, help="items per list page")
    args = parser.parse_args(argv)
    try:
        emu = ArmEmulator(args.snapshot, lro_delay=args.lro_delay, latency=args.latency,
                          page_size=args.page_size, port=args.port)
    except SnapshotError as exc:
        print(f"armemu: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with emu:
        print(emu.url, flush=True)
        while not stop.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
