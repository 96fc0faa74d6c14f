"""Hand-built findings and alerts: the alert tests do not depend on the rule engine."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

from exfilguard.alerts.message import (
    ActionTaken,
    ActiveExemption,
    Alert,
    Escalation,
    ExemptionChange,
    ResourceFacts,
)
from exfilguard.core.actor import Actor
from exfilguard.core.findings import Exemption, Finding, Severity

SUB = "00000000-1111-2222-3333-444444444444"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-ml-prod"
NSG = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg_ml_training"
SUBNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet-ml/subnets/snet-training"
COMPUTE = f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/mlw-prod/computes/gpu-cluster"
WORKSPACE = f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/mlw-prod"
TODAY = date(2025, 3, 14)
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
SCHEMA = Path(__file__).resolve().parents[2] / "exfilguard" / "data" / "adaptive-card-1.5.schema.json"


@cache
def card_schema() -> dict:
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def nsg_finding(**kw: object) -> Finding:
    base = dict(
        rule_id="EXF-NSG-01", resource_id=NSG, severity=Severity.CRITICAL,
        title="Outbound internet traffic is not denied",
        detail="Rule allow_all_out allows * to Internet on ports * before any Deny (priority 200).",
        fix_summary="add rule exfilguard-deny-internet-outbound at priority 4096", fix_mode="auto",
        resource_type="Microsoft.Network/networkSecurityGroups",
        items=("allow_all_out: Outbound Allow * -> Internet, ports *",),
    )
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


def compute_finding(**kw: object) -> Finding:
    base = dict(
        rule_id="EXF-CMP-02", resource_id=COMPUTE, severity=Severity.HIGH,
        title="Compute has a public IP", detail="enableNodePublicIp is true.",
        fix_summary="", fix_mode="manual", resource_type="Microsoft.MachineLearningServices/workspaces/computes",
    )
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


def exempt_finding() -> Finding:
    return nsg_finding(rule_id="EXF-NSG-04", severity=Severity.MEDIUM, title="Allow rule wider than its tag",
                       exempt=True, exemption=Exemption(frozenset({"EXF-NSG-04"}), "2025-06-30", "vendor agent"))


def change() -> Actor:
    return Actor(name="Dana Whitfield", upn="dana_w@contoso.com",
                 operation="Microsoft.Network/networkSecurityGroups/securityRules/write",
                 time=datetime(2025, 3, 14, 9, 12, 5, tzinfo=UTC),
                 correlation_id="7c1e2f0a-1111-4d3b-9a55-0123456789ab",
                 event_id="f00dfeed-0000-4000-8000-000000000001")


def fixed_alert() -> Alert:
    return Alert.build(
        nsg_finding(), change=change(), region="westeurope",
        http_endpoint="https://func-exfilguard.azurewebsites.net",
        action=ActionTaken.fixed(before="(no rule)", after="exfilguard-deny-internet-outbound: Outbound Deny * "
                                 "-> Internet, ports *, priority 4096", property_path="properties.securityRules"))


def compute_alert() -> Alert:
    return Alert.build(compute_finding(), region="westeurope")


def many_alerts(n: int) -> list[Alert]:
    """``n`` findings over n/4 resources, every severity, for digest size tests."""
    sev = list(Severity)
    out = []
    for i in range(n):
        rid = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-team-{i // 4:03d}"
        f = nsg_finding(rule_id=f"EXF-NSG-0{i % 4 + 1}", resource_id=rid, severity=sev[i % 4],
                        title=f"Finding number {i} with a realistic title length")
        out.append(Alert.build(f, region="westeurope"))
    return out


def escalation() -> Escalation:
    return Escalation(resource=ResourceFacts.from_resource_id(NSG, region="westeurope"),
                      rule_ids=("EXF-NSG-01",), write_count=6, window=timedelta(minutes=30),
                      actor=Actor(app_id="9f8e7d6c-0000-4000-8000-00000000beef",
                                  operation="Microsoft.Network/networkSecurityGroups/write"),
                      detected_at=NOW)


def exemption_change(previous: str = "") -> ExemptionChange:
    """Dana tags the NSG to switch EXF-NSG-01 off for a month."""
    return ExemptionChange(
        resource=ResourceFacts.from_resource_id(NSG, region="westeurope"),
        value="EXF-NSG-01;until=2025-04-13;reason=CHG-4711; vendor test", previous=previous,
        rule_ids=("EXF-NSG-01",), until="2025-04-13", reason="CHG-4711; vendor test", status="active",
        status_note="EXF-NSG-01 exempt until 2025-04-13", change=change(), detected_at=NOW)


def active_exemptions() -> list[ActiveExemption]:
    return [ActiveExemption(ResourceFacts.from_resource_id(NSG, region="westeurope"), ("EXF-NSG-01",),
                            "2025-04-13", "CHG-4711; vendor test"),
            ActiveExemption(ResourceFacts.from_resource_id(COMPUTE), ("EXF-CMP-02", "EXF-CMP-04"),
                            "2025-03-31", "GPU driver debugging")]
