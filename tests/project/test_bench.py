"""``make bench`` itself: the harness produces every key of bench/results.json (behaviour only:
``--quick`` sizes are tiny and no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.function_support import REPO, azurite_connection

KEYS = {"cold_import_s", "cold_first_decision_s", "peak_rss_mb", "engine_events_per_s", "arm_requests_per_event",
        "sweep_s", "sweep_growth", "remediation_overhead_ratio", "nsg_rules_s", "html_report_ratio",
        "storm_reads", "sweep_large", "targets", "machine"}
KINDS = {"securityRules/write", "subnets/write", "virtualNetworks/write", "computes/write",
         "serviceEndpointPolicies/write", "routeTables/write", "routes/write", "azureFirewalls/write",
         "firewallPolicies/write", "ruleCollectionGroups/write"}
ALERT_ONLY = {"routeTables/write", "routes/write", "azureFirewalls/write", "firewallPolicies/write",
              "ruleCollectionGroups/write"}


def test_quick_bench_writes_every_key(tmp_path):
    out = tmp_path / "results.json"
    env = {**os.environ, "AZURITE_CONNECTION_STRING": azurite_connection()}
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=420, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results) == KEYS
    assert set(results["arm_requests_per_event"]) == KINDS
    for kind, counts in results["arm_requests_per_event"].items():
        # every drift was fixed with one write; the egress drifts are alert-only: no write
        assert counts["writes"] == (0 if kind in ALERT_ONLY else 1) and counts["reads"] >= 1, (kind, counts)
    assert len(results["sweep_s"]) == 3
    assert set(results["nsg_rules_s"]) == {"250", "1000", "4000"}
    assert {"nsg_rules_s.1000", "nsg_rules_growth"} <= set(results["targets"])
    assert results["machine"]["cores"] and results["machine"]["python"]
    assert all({"target", "value", "holds"} <= set(t) for t in results["targets"].values())
    assert "holds?" in proc.stdout
