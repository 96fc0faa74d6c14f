"""Large NSGs: ``python -m bench.nsg_rules [--repeats R] [SIZE ...]``.

Azure allows 1,000 rules per NSG (more with a support request), so the NSG rules must cost
time linear in the rules. For each size a snapshot holding one guarded NSG with that many
custom rules is generated into a temporary directory (with its VNet, subnet, workspace and
compute), and a whole ``exfilguard scan --snapshot FILE`` process is timed, from spawn to
exit (interpreter start-up and import included, as a person running it sees it). The NSG is
drifted the way that makes the NSG rules do the most: no Deny of the internet (EXF-NSG-01,
so required flows need Allow rules), a quarter of the outbound rules allowing a public
address (EXF-NSG-02, one edit each), a tenth of them opening two destinations of which one
is public (EXF-NSG-02 removes one), and a quarter of the inbound rules open to a public
source (EXF-NSG-05). The median of ``R`` processes per size is reported. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests import factory as f

from .common import child_env

SIZES = (250, 1000, 4000)
REGION = "westeurope"
RG = "rg-nsg-bench"


def _rule(i: int, priority: int, inbound: bool, nsg: str) -> dict[str, Any]:
    """The ``i``-th rule of its direction: a mix of the shapes real NSGs hold."""
    octet = f"{(i // 250) % 250 + 1}.{i % 250 + 1}"
    if inbound:
        kind = i % 4
        if kind == 0:  # open to a public source: EXF-NSG-05
            return f.rule(f"in-{i}", priority, "Inbound", source=f"52.{octet}.0/24", dest="VirtualNetwork",
                          ports=str(1024 + i % 60000), nsg=nsg)
        return f.rule(f"in-{i}", priority, "Inbound", source=f"10.{octet}.0/24", dest="VirtualNetwork",
                      ports=str(1024 + i % 60000), access="Allow" if kind != 3 else "Deny", nsg=nsg)
    kind = i % 20
    if kind < 5:  # a public address: EXF-NSG-02 sets it to Deny
        return f.rule(f"out-{i}", priority, dest=f"52.{octet}.0/24", ports=str(1024 + i % 60000), nsg=nsg)
    if kind < 7:  # one good and one public destination: EXF-NSG-02 removes the public one
        return f.rule(f"out-{i}", priority, dest=[f"Storage.{REGION}", f"20.{octet}.0/24"], nsg=nsg)
    if kind < 12:  # a private range
        return f.rule(f"out-{i}", priority, dest=f"10.{octet}.0/24", ports=str(1024 + i % 60000), nsg=nsg)
    if kind < 16:  # a Deny of a private range
        return f.rule(f"out-{i}", priority, access="Deny", dest=f"172.16.{i % 250}.0/24", ports="*", nsg=nsg)
    return f.rule(f"out-{i}", priority, dest=f"Storage.{REGION}", nsg=nsg)  # a permitted tag


def subscription(rules: int) -> list[dict[str, Any]]:
    """One guarded NSG with ``rules`` custom rules, half inbound and half outbound (priorities
    from 100 up in each direction, so 4,000 rules fit the 100-4096 range)."""
    nid = f.nsg_id(RG, "nsg-large")
    body = [_rule(i // 2, 100 + i // 2, i % 2 == 1, nid) for i in range(rules)]
    nsg = f.nsg(RG, "nsg-large", REGION, body)
    st = f.storage(RG, "stnsgbench01", REGION)
    vid = f.vnet_id(RG, "vnet-large")
    sn = f.subnet(vid, "snet-training", "10.90.1.0/24", nsg["id"], [], [f.storage_endpoint(REGION)])
    ws = f.workspace(RG, "mlw-large", REGION, st["id"])
    return [f.vnet(RG, "vnet-large", REGION, "10.90.0.0/16", [sn]), nsg, st, ws,
            f.compute(ws["id"], "ci-large", REGION, subnet=sn["id"])]


def _command(path: Path) -> list[str]:
    script = Path(sys.executable).with_name("exfilguard")
    if script.exists():
        return [str(script), "scan", "--snapshot", str(path)]
    return [sys.executable, "-c", "import sys; from exfilguard.cli.main import main; sys.exit(main())", "scan",
            "--snapshot", str(path)]


def measure(sizes: tuple[int, ...] = SIZES, repeats: int = 3) -> dict[str, Any]:
    out: dict[str, Any] = {"nsg_rules_s": {}, "runs_s": {}, "findings": {}}
    with tempfile.TemporaryDirectory(prefix="exfilguard-nsg-bench-") as tmp:
        for size in sizes:
            path = Path(tmp) / f"nsg-{size}.json"
            path.write_text(json.dumps(subscription(size)), encoding="utf-8")
            runs = []
            for _ in range(repeats):
                started = time.perf_counter()
                proc = subprocess.run([*_command(path), "--format", "json"], capture_output=True, text=True,
                                      env=child_env(), check=False)
                runs.append(time.perf_counter() - started)
                if proc.returncode not in (0, 1):
                    raise RuntimeError(f"exfilguard scan failed ({proc.returncode}): {proc.stderr[-2000:]}")
            report = json.loads(proc.stdout)
            out["nsg_rules_s"][str(size)] = round(statistics.median(runs), 4)
            out["runs_s"][str(size)] = [round(r, 4) for r in runs]
            out["findings"][str(size)] = sorted({x["ruleId"] for x in report["findings"]})
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.nsg_rules")
    p.add_argument("sizes", type=int, nargs="*", default=list(SIZES))
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    print(json.dumps(measure(tuple(args.sizes), args.repeats)))


if __name__ == "__main__":
    main()
