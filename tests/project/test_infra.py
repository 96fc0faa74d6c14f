"""The deployment (infra/, azure.yaml, docs/deploy.md): checkov over the Bicep, and the agreements
that no tool checks for us.

* checkov scans infra/ with ``--framework bicep --skip-download``. A Bicep file checkov cannot
  parse shows up only in ``parsing_errors`` while checkov still exits 0, so parse errors are
  failures here, like failed checks and suppressions without a written reason.
* The Event Grid filter in main.bicep holds exactly ``exfilguard.core.operations.MAPPED_OPERATION_NAMES``
  (at most 25 values: Event Grid's limit for advanced-filter values).
* The custom role has no wildcard, grants per deployment mode exactly what
  ``infra/role-actions.json`` says (audit: reads only), and the docs table is rendered from
  that same file.

checkov lives in its own venv (``make checkov`` builds ``.venv-checkov``); it is run as a
subprocess and its absence is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from exfilguard.core.operations import MAPPED_OPERATION_NAMES

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
MODULES = INFRA / "modules"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"

EVENT_GRID_MAX_FILTER_VALUES = 25
QUARANTINE_ACTIONS = {
    "Microsoft.MachineLearningServices/workspaces/computes/stop/action",
    "Microsoft.MachineLearningServices/workspaces/computes/write",
    "Microsoft.MachineLearningServices/locations/computeOperationsStatus/read",
}
# What the role must allow in remediate mode, at the least. Rules and policy definitions are
# read and written inline through their NSG and policy (the code never calls their own
# endpoints), so securityRules/* and serviceEndpointPolicyDefinitions/* are not granted.
REQUIRED_ACTIONS = {
    "Microsoft.Network/networkSecurityGroups/read",
    "Microsoft.Network/networkSecurityGroups/write",
    "Microsoft.Network/virtualNetworks/subnets/read",
    "Microsoft.Network/virtualNetworks/subnets/write",
    "Microsoft.Network/networkSecurityGroups/join/action",
    "Microsoft.Network/serviceEndpointPolicies/join/action",
    "Microsoft.Network/routeTables/join/action",
    "Microsoft.Network/natGateways/join/action",
    "Microsoft.Network/serviceEndpointPolicies/read",
    "Microsoft.Network/serviceEndpointPolicies/write",
    "Microsoft.Network/locations/operations/read",
    "Microsoft.Network/locations/operationResults/read",
    "Microsoft.MachineLearningServices/workspaces/read",
    "Microsoft.MachineLearningServices/workspaces/computes/read",
    "Microsoft.MachineLearningServices/workspaces/environments/read",
    "Microsoft.Storage/storageAccounts/read",
    "Microsoft.MachineLearningServices/workspaces/computes/stop/action",
}
APP_SETTINGS = (
    "EXFILGUARD_MODE",
    "EXFILGUARD_SUBSCRIPTION_ID",
    "EXFILGUARD_IDENTITY_CLIENT_ID",
    "AZURE_CLIENT_ID",
    "EXFILGUARD_IDENTITY_OBJECT_ID",
    "EXFILGUARD_TEAMS_WEBHOOK_URL",
    "EXFILGUARD_EMAIL_CHANNEL",
    "EXFILGUARD_ACS_ENDPOINT",
    "EXFILGUARD_EMAIL_SENDER",
    "EXFILGUARD_EMAIL_TO",
    "EXFILGUARD_QUARANTINE",
    "EXFILGUARD_SWEEP_SCHEDULE",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
)


# --- checkov ---------------------------------------------------------------------------------


def run_checkov(directory: Path) -> list[dict]:
    """checkov's Bicep report(s) for ``directory``; fails the test if checkov is missing or crashes."""
    if not CHECKOV.is_file():
        pytest.fail(f"{CHECKOV.relative_to(ROOT)} is missing: run `make checkov` (make test does it)")
    env = dict(os.environ, CKV_SKIP_PACKAGE_UPDATE_CHECK="true", BC_SKIP_MAPPING="TRUE")
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "bicep", "--skip-download", "-o", "json"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=280, check=False,
    )
    # 0: no failed check (parse errors included!), 1: some check failed, anything else: a crash.
    if proc.returncode not in (0, 1):
        pytest.fail(f"checkov exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON report:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    reports = data if isinstance(data, list) else [data]
    return [r for r in reports if r.get("check_type") == "bicep"]


def checkov_problems(reports: list[dict]) -> list[str]:
    """Everything that must fail the build: no report, parse errors, failed checks, bare skips."""
    if not reports:
        return ["checkov produced no Bicep report (no .bicep file found?)"]
    out: list[str] = []
    for report in reports:
        results = report.get("results", {})
        out += [f"Bicep parse error (checkov skipped the whole file): {path}"
                for path in results.get("parsing_errors", [])]
        out += [f"{c['check_id']} failed: {c['resource']} in {c['file_path']} ({c['check_name']})"
                for c in results.get("failed_checks", [])]
        for c in results.get("skipped_checks", []):
            reason = ((c.get("check_result") or {}).get("suppress_comment") or "").strip()
            if len(reason) < 20:
                out.append(f"{c['check_id']} on {c['resource']} in {c['file_path']} is suppressed "
                           "without a written reason (// checkov:skip=ID: <why>)")
    return out


def checkov_counts(reports: list[dict]) -> dict[str, int]:
    keys = ("passed", "failed", "skipped", "parsing_errors")
    return {k: sum(int(r.get("summary", {}).get(k, 0)) for r in reports) for k in keys}


@pytest.fixture(scope="module")
def infra_reports() -> list[dict]:
    return run_checkov(INFRA)


def test_checkov_passes_on_infra(infra_reports: list[dict]) -> None:
    counts = checkov_counts(infra_reports)
    problems = checkov_problems(infra_reports)
    assert not problems, f"checkov {counts}:\n" + "\n".join(problems)
    assert counts["passed"] > 0, f"checkov evaluated nothing: {counts}"


def test_a_bicep_parse_error_fails_the_scan(tmp_path: Path) -> None:
    # checkov exits 0 on this; the guard above must still see it.
    (tmp_path / "fine.bicep").write_text("param name string\n")
    (tmp_path / "broken.bicep").write_text(
        "resource broken 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: \n")
    problems = checkov_problems(run_checkov(tmp_path))
    assert any("parse error" in p and p.endswith("broken.bicep") for p in problems), problems


# --- Bicep text helpers ----------------------------------------------------------------------


def bicep_string_array(text: str, var_name: str) -> list[str]:
    """The items of ``var <var_name> = [ ... ]``, one quoted string per line (comments allowed)."""
    match = re.search(rf"^var {var_name} = \[\n(.*?)^\]", text, re.MULTILINE | re.DOTALL)
    assert match, f"var {var_name} = [ ... ] not found"
    items = []
    for raw in match.group(1).splitlines():
        line = raw.strip()
        if not line or line.startswith("//"):
            continue
        item = re.fullmatch(r"'([^'\\]*)'", line)
        assert item, f"unexpected line in {var_name}: {raw!r}"
        items.append(item.group(1))
    return items


def bicep_params(text: str) -> dict[str, bool]:
    """Parameter name -> whether it has a default value."""
    return {m.group(1): m.group(2) is not None
            for m in re.finditer(r"^param (\w+) \w+( = .*)?$", text, re.MULTILINE)}


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# --- Event Grid ------------------------------------------------------------------------------


def test_event_filter_holds_exactly_the_mapped_operations() -> None:
    names = bicep_string_array(read(MAIN), "handledOperationNames")
    assert len(names) == len(set(names)), "duplicate operation in handledOperationNames"
    missing = sorted(set(MAPPED_OPERATION_NAMES) - set(names))
    extra = sorted(set(names) - set(MAPPED_OPERATION_NAMES))
    assert not missing and not extra, f"not in the Bicep filter: {missing}; not mapped by the code: {extra}"
    # More than 25 operations: main.bicep splits them over event subscriptions of at most 25 each.
    main = read(MAIN)
    assert f"var maxFilterValues = {EVENT_GRID_MAX_FILTER_VALUES}" in main
    assert ("var operationChunks = (length(handledOperationNames) + maxFilterValues - 1) / maxFilterValues"
            in main)
    assert "[for i in range(0, operationChunks): if (subscribeToEvents)" in main
    assert "operationNames: take(skip(handledOperationNames, i * maxFilterValues), maxFilterValues)" in main
    chunks = [names[i:i + EVENT_GRID_MAX_FILTER_VALUES] for i in range(0, len(names), EVENT_GRID_MAX_FILTER_VALUES)]
    assert all(len(c) <= EVENT_GRID_MAX_FILTER_VALUES for c in chunks) and sum(map(len, chunks)) == len(names)


def test_event_subscription_is_wired_to_the_handler_with_retries_and_dead_letters() -> None:
    main = read(MAIN)
    sub = read(MODULES / "eventgrid-subscription.bicep")
    assert "operationNames: take(skip(handledOperationNames, i * maxFilterValues), maxFilterValues)" in main
    assert "var eventFunctionName = 'on_resource_event'" in main
    assert "functionName: eventFunctionName" in main
    # One advanced filter: StringIn on data.operationName over the mapped operations.
    assert sub.count("operatorType:") == 1
    assert re.search(r"operatorType: 'StringIn'\s+key: 'data\.operationName'\s+values: operationNames", sub)
    assert f"@maxLength({EVENT_GRID_MAX_FILTER_VALUES})\nparam operationNames array" in sub
    assert bicep_types(sub) == {
        "Microsoft.Resources.ResourceWriteSuccess",
        "Microsoft.Resources.ResourceDeleteSuccess",
        "Microsoft.Resources.ResourceActionSuccess",
    }
    assert "endpointType: 'AzureFunction'" in sub
    assert "resourceId: '${functionAppId}/functions/${functionName}'" in sub
    assert re.search(r"retryPolicy: \{\s+maxDeliveryAttempts: \w+\s+eventTimeToLiveInMinutes: \w+", sub)
    assert re.search(r"deadLetterWithResourceIdentity: \{\s+identity: \{\s+type: 'SystemAssigned'", sub)
    assert "endpointType: 'StorageBlob'" in sub
    # The topic's identity may write to the dead-letter container and nowhere else.
    access = read(MODULES / "deadletter-access.bicep")
    assert "scope: container" in access and "ba92f5b4-2d11-453d-a403-e96b0029c9fe" in access
    topic = read(MODULES / "eventgrid-topic.bicep")
    assert "topicType: 'Microsoft.Resources.Subscriptions'" in topic and "source: subscription().id" in topic


def bicep_types(text: str) -> set[str]:
    match = re.search(r"includedEventTypes: \[\n(.*?)\n\s*\]", text, re.DOTALL)
    assert match, "includedEventTypes not found"
    return set(re.findall(r"'([^']+)'", match.group(1)))


# --- the custom role -------------------------------------------------------------------------

ROLE_LISTS = ("readActions", "remediateActions", "quarantineActions")
MODES = [("audit", False), ("audit", True), ("remediate", False), ("remediate", True)]


def role_actions() -> dict[str, list[str]]:
    text = read(MODULES / "role.bicep")
    return {name: bicep_string_array(text, name) for name in ROLE_LISTS}


def bicep_role_for(remediate: bool, quarantine: bool) -> list[str]:
    """What role.bicep grants: ``concat(readActions, remediate ? remediateActions : [],
    remediate && enableQuarantine ? quarantineActions : [])``, evaluated."""
    lists = role_actions()
    return (lists["readActions"] + (lists["remediateActions"] if remediate else [])
            + (lists["quarantineActions"] if remediate and quarantine else []))


def test_role_has_no_wildcard_and_only_well_formed_actions() -> None:
    text = read(MODULES / "role.bicep")
    lists = role_actions()
    actions = [a for group in lists.values() for a in group]
    assert len(actions) == len(set(actions)), "an action appears twice in role.bicep"
    for action in actions:
        assert "*" not in action
        assert re.fullmatch(r"Microsoft\.[A-Za-z]+(/[A-Za-z]+)+", action), action
    assert set(lists["quarantineActions"]) == QUARANTINE_ACTIONS
    assert ("var roleActions = concat(readActions, remediate ? remediateActions : [], "
            "remediate && enableQuarantine ? quarantineActions : [])") in text
    assert "param remediate bool = false" in text
    assert "actions: roleActions" in text
    for empty in ("notActions: []", "dataActions: []", "notDataActions: []"):
        assert empty in text
    assert "targetScope = 'subscription'" in text
    assert re.search(r"assignableScopes: \[\s+subscription\(\)\.id\s+\]", text)
    assert "roleDefinitionId: roleDefinition.id" in text
    missing = REQUIRED_ACTIONS - set(bicep_role_for(True, True))
    assert not missing, f"role.bicep lacks {sorted(missing)}"
    main = read(MAIN)
    assert "module role 'modules/role.bicep'" in main
    assert "param grantWriteActions bool = mode == 'remediate'" in main
    assert "remediate: grantWriteActions" in main and "enableQuarantine: enableQuarantine" in main


@pytest.mark.parametrize("mode, quarantine", MODES)
def test_bicep_role_is_the_data_file_in_every_mode(mode: str, quarantine: bool) -> None:
    from exfilguard.cli import roles

    assert bicep_role_for(mode == "remediate", quarantine) == roles.actions_for(mode, quarantine)


def test_audit_mode_role_has_no_write_action() -> None:
    from exfilguard.cli import roles

    granted = set(roles.actions_for("audit", quarantine=True))
    by_action = {a.action: a for a in roles.load()}
    assert granted and all(by_action[a].access == "read" and a.endswith("/read") for a in granted)
    assert all(a.when == "always" for a in by_action.values() if a.action in granted)
    writes = set(roles.actions_for("remediate", quarantine=True)) - granted
    assert {"Microsoft.Network/networkSecurityGroups/write", "Microsoft.MachineLearningServices/workspaces/write",
            "Microsoft.Network/virtualNetworks/subnets/write"} <= writes


def test_every_granted_action_is_one_the_code_calls() -> None:
    """Each action maps to something ExfilGuard reads, writes or polls; the ones it never calls
    (rules and policy definitions are handled inline by their parents) stay out."""
    from exfilguard.cli import roles
    from exfilguard.core import types

    actions = {a.action for a in roles.load()}
    for never in ("Microsoft.Network/networkSecurityGroups/securityRules/read",
                  "Microsoft.Network/networkSecurityGroups/securityRules/write",
                  "Microsoft.Network/serviceEndpointPolicies/serviceEndpointPolicyDefinitions/read",
                  "Microsoft.Network/serviceEndpointPolicies/serviceEndpointPolicyDefinitions/write",
                  "Microsoft.MachineLearningServices/workspaces/outboundRules/read"):
        assert never not in actions, never
    for swept in types.SWEPT:
        assert f"{swept.arm_type}/read" in actions, swept


def test_docs_table_is_rendered_from_the_data_file() -> None:
    from exfilguard.cli import roles

    table = roles.render_role_table()
    rows = re.findall(r"^\| `([^`]+)` \| (read|write) \| ([^|]+) \| ([^|]+) \|", table, re.MULTILINE)
    assert [r[0] for r in rows] == [a.action for a in roles.load()]
    in_role = {a for group in role_actions().values() for a in group}
    assert {r[0] for r in rows} == in_role
    for action, _, granted, needed_by in rows:
        assert needed_by.strip(), f"{action}: no rule named"
        assert ("quarantine" in needed_by.lower()) == (action in QUARANTINE_ACTIONS), action
        assert (granted.strip() == "always") == (action in set(roles.actions_for("audit"))), action


def test_deploy_doc_shows_the_current_role_table() -> None:
    from exfilguard.cli import roles

    assert roles.render_role_table() in read(ROOT / "docs" / "deploy.md"), (
        "docs/deploy.md's Role actions table is stale: run `make docs`")


# --- the rest of the deployment --------------------------------------------------------------


def test_function_app_is_flex_consumption_with_identity_based_storage() -> None:
    app = read(MODULES / "functionapp.bicep")
    storage = read(MODULES / "storage.bicep")
    assert re.search(r"name: 'FC1'\s+tier: 'FlexConsumption'", app)
    assert "httpsOnly: true" in app and "minTlsVersion: '1.2'" in app
    assert re.search(r"@allowed\(\[\s+'3\.11'\s+'3\.12'\s+\]\)\nparam pythonVersion", app)
    assert re.search(r"type: 'UserAssigned'\s+userAssignedIdentities:", app)
    assert "type: 'UserAssignedIdentity'" in app  # the deployment container, too
    assert "allowSharedKeyAccess: false" in storage
    templates = read(MAIN) + app
    for setting in APP_SETTINGS:
        assert f"name: '{setting}'" in templates, f"app setting {setting} is not written"
    assert "'@Microsoft.KeyVault(SecretUri=${keyVault.outputs.teamsWebhookSecretUri})'" in read(MAIN)


def test_outputs_name_the_app_its_endpoint_and_the_identity() -> None:
    outputs = set(re.findall(r"^output (\w+) ", read(MAIN), re.MULTILINE))
    assert {"FUNCTION_APP_NAME", "FUNCTION_APP_ENDPOINT", "IDENTITY_PRINCIPAL_ID"} <= outputs


@pytest.mark.parametrize("name", ["main.parameters.json", "main.parameters.example.json"])
def test_parameter_files_match_the_template(name: str) -> None:
    params = bicep_params(read(MAIN))
    given = json.loads(read(INFRA / name))["parameters"]
    unknown = sorted(set(given) - set(params))
    assert not unknown, f"{name} sets parameters main.bicep does not declare: {unknown}"
    required = sorted(p for p, has_default in params.items() if not has_default)
    assert set(required) <= set(given), f"{name} lacks required parameters {required}"


def test_azure_yaml_points_azd_at_the_subscription_template() -> None:
    azd = yaml.safe_load(read(ROOT / "azure.yaml"))
    assert azd["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    ((service_name, service),) = azd["services"].items()
    assert service["host"] == "function" and service["language"] == "python"
    # azd finds the app by its azd-service-name tag.
    assert f"param azdServiceName string = '{service_name}'" in read(MODULES / "functionapp.bicep")
    assert "targetScope = 'subscription'" in read(MAIN)
