"""``exfilguard policy export``: the rules Azure Policy can decide, as policy definitions.

Azure Policy sees one resource at a time, through aliases. A rule is exported only when it
can be decided from one resource's own properties AND every alias it needs is proven real:
``exfilguard/data/policy-aliases.json`` lists each alias with a definition that uses it, and
only a Microsoft built-in (Azure/azure-policy ``built-in-policies/``) counts as proof. Aliases
seen only in reference or documentation examples are listed as candidates; the rules that need
them are not exported until a built-in uses them. The rules that need several resources (service endpoint policy
contents, required flows, guarded subnets) stay ExfilGuard's; that file's ``enforcement``
table says, for every rule, where it is enforced.

The output is deterministic (sorted keys, one file per definition named after the rule, a
trailing newline) so it can be committed and reviewed; ``infra/policy/`` holds it and
``infra/modules/policy.bicep`` deploys it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from exfilguard.core.rules import RULES

EFFECTS = ("Audit", "Deny", "Disabled")
CATEGORY = "ExfilGuard"
VERSION = "1.0.0"
INITIATIVE_NAME = "exfilguard-baseline"
INITIATIVE_FILE = "initiative.json"
SCOPE_PLACEHOLDER = "/subscriptions/{subscriptionId}"
# Fields that are not aliases (the policy language's own resource fields).
BUILT_IN_FIELDS = frozenset({"type", "name", "location", "kind", "id", "fullName", "tags", "identity.type"})

_WS = "Microsoft.MachineLearningServices/workspaces"
_CMP = f"{_WS}/computes"
_RULE = "Microsoft.Network/networkSecurityGroups/securityRules"
_NSG = "Microsoft.Network/networkSecurityGroups"
_INTERNET = ["*", "Internet", "0.0.0.0/0"]


class PolicyExportError(ValueError):
    """The output folder cannot be written: one line, exit 2."""


@dataclass(frozen=True, slots=True)
class Export:
    rule_id: str
    mode: str  # "Indexed" for top-level resources, "All" for child types (as the built-ins do)
    condition: dict[str, Any]
    deny_safe: bool  # False: Deny would block legitimate writes (see `note`), so the default stays Audit
    note: str  # how the policy differs from the ExfilGuard rule


def _type(t: str) -> dict[str, str]:
    return {"field": "type", "equals": t}


EXPORTS: tuple[Export, ...] = (
    Export("EXF-WS-01", "Indexed", {"allOf": [
        _type(_WS),
        {"count": {"field": f"{_WS}/privateEndpointConnections[*]",
                   "where": {"field": f"{_WS}/privateEndpointConnections[*].privateLinkServiceConnectionState.status",
                             "equals": "Approved"}},
         "less": 1},
        {"field": f"{_WS}/managedNetwork.isolationMode", "notEquals": "AllowOnlyApprovedOutbound"},
    ]}, False, "Deny would refuse every new workspace: its private endpoint connection is added after it exists."),
    Export("EXF-WS-02", "Indexed", {"allOf": [
        _type(_WS),
        {"anyOf": [{"field": f"{_WS}/publicNetworkAccess", "exists": "false"},
                   {"field": f"{_WS}/publicNetworkAccess", "notEquals": "Disabled"}]},
    ]}, True, "Same decision as ExfilGuard."),
    Export("EXF-WS-04", "Indexed", {"allOf": [
        _type(_WS),
        {"field": f"{_WS}/managedNetwork.isolationMode", "equals": "AllowInternetOutbound"},
    ]}, True, "Same decision as ExfilGuard."),
    Export("EXF-CMP-01", "All", {"allOf": [
        _type(_CMP),
        {"field": f"{_CMP}/computeType", "in": ["AmlCompute", "ComputeInstance"]},
        {"anyOf": [{"field": f"{_CMP}/subnet.id", "exists": "false"},
                   {"field": f"{_CMP}/subnet.id", "equals": ""}]},
    ]}, False, "Stricter than ExfilGuard: a policy cannot see that the compute's workspace has a managed network, "
               "so Deny would refuse managed-network compute."),
    Export("EXF-CMP-02", "All", {"allOf": [
        _type(_CMP),
        {"field": f"{_CMP}/computeType", "notEquals": "AKS"},
        {"field": f"{_CMP}/enableNodePublicIP", "equals": "true"},
    ]}, True, "Decides on enableNodePublicIP only; a public IP reported without that flag stays ExfilGuard's."),
    Export("EXF-CMP-04", "All", {"allOf": [
        _type(_CMP),
        {"field": f"{_CMP}/computeType", "equals": "AmlCompute"},
        {"field": f"{_CMP}/remoteLoginPortPublicAccess", "equals": "Enabled"},
    ]}, True, "Clusters only (remoteLoginPortPublicAccess); compute-instance SSH has no proven alias."),
    # Standalone security rules only: the inline securityRules[*] aliases are used by no built-in.
    Export("EXF-NSG-05", "All", {"allOf": [
        _type(_RULE),
        {"field": f"{_RULE}/access", "equals": "Allow"},
        {"field": f"{_RULE}/direction", "equals": "Inbound"},
        {"anyOf": [
            {"field": f"{_RULE}/sourceAddressPrefix", "in": _INTERNET},
            {"count": {"field": f"{_RULE}/sourceAddressPrefixes[*]",
                       "where": {"field": f"{_RULE}/sourceAddressPrefixes[*]", "in": _INTERNET}},
             "greater": 0},
        ]},
    ]}, True, "Rules written as standalone securityRules resources, from *, Internet or 0.0.0.0/0; rules inline in "
              "an NSG body (no built-in proves those aliases), public address ranges and the limit to NSGs on "
              "guarded subnets stay ExfilGuard's."),
)


@cache
def alias_data() -> dict[str, Any]:
    """``exfilguard/data/policy-aliases.json``: proven aliases and where each rule is enforced."""
    text = resources.files("exfilguard").joinpath("data/policy-aliases.json").read_text(encoding="utf-8")
    return json.loads(text)


def fields_of(node: Any) -> set[str]:
    """Every ``field`` a policy rule reads (count expressions included)."""
    out: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "field" and isinstance(v, str):
                out.add(v)
            else:
                out |= fields_of(v)
    elif isinstance(node, list):
        for v in node:
            out |= fields_of(v)
    return out


def aliases_of(export: Export) -> list[str]:
    return sorted(f for f in fields_of(export.condition) if f not in BUILT_IN_FIELDS)


def proven_aliases() -> frozenset[str]:
    """Aliases a Microsoft built-in definition uses."""
    return frozenset(a for a, src in alias_data()["aliases"].items() if src["kind"] == "built-in")


def exported() -> tuple[Export, ...]:
    """The exports whose every alias is proven by a built-in (a rule without proof is not exported)."""
    proven = proven_aliases()
    return tuple(e for e in EXPORTS if all(a in proven for a in aliases_of(e)))


def definition_name(rule_id: str) -> str:
    return rule_id.lower().replace("exf-", "exfilguard-")


def effect_parameter(rule_id: str) -> str:
    return "effect" + rule_id.removeprefix("EXF-").replace("-", "")


def _effect_param(default: str) -> dict[str, Any]:
    return {"type": "String", "allowedValues": list(EFFECTS), "defaultValue": default,
            "metadata": {"displayName": "Effect",
                         "description": "Audit reports, Deny refuses the write, Disabled turns the policy off"}}


def definition(export: Export, effect: str = "Audit") -> dict[str, Any]:
    """One policy definition (the shape of ``Microsoft.Authorization/policyDefinitions``)."""
    rule = RULES[export.rule_id]
    default = effect if export.deny_safe else "Audit"
    proven = alias_data()["aliases"]
    return {
        "name": definition_name(export.rule_id),
        "type": "Microsoft.Authorization/policyDefinitions",
        "properties": {
            "displayName": f"ExfilGuard {rule.id}: {rule.title}",
            "policyType": "Custom",
            "mode": export.mode,
            "description": f"{rule.rationale} {export.note} Guidance: {rule.guidance}",
            "metadata": {
                "category": CATEGORY,
                "version": VERSION,
                "exfilguard": {
                    "ruleId": rule.id,
                    "severity": rule.severity.value,
                    "denySafe": export.deny_safe,
                    "effectParameter": effect_parameter(rule.id),
                    "aliases": [{"alias": a, "provenBy": proven[a]["path"], "repository": proven[a]["repository"]}
                                for a in aliases_of(export)],
                },
            },
            "parameters": {"effect": _effect_param(default)},
            "policyRule": {"if": export.condition, "then": {"effect": "[parameters('effect')]"}},
        },
    }


def initiative(definitions: list[dict[str, Any]], scope: str = SCOPE_PLACEHOLDER) -> dict[str, Any]:
    """The policy set grouping them, one effect parameter per rule (``policySetDefinitions``)."""
    params: dict[str, Any] = {}
    refs = []
    for d in definitions:
        meta = d["properties"]["metadata"]["exfilguard"]
        name = meta["effectParameter"]
        params[name] = {**_effect_param(d["properties"]["parameters"]["effect"]["defaultValue"]),
                        "metadata": {"displayName": f"Effect for {meta['ruleId']}",
                                     "description": d["properties"]["displayName"]}}
        refs.append({
            "policyDefinitionReferenceId": meta["ruleId"],
            "policyDefinitionId": f"{scope}/providers/Microsoft.Authorization/policyDefinitions/{d['name']}",
            "parameters": {"effect": {"value": f"[parameters('{name}')]"}},
        })
    return {
        "name": INITIATIVE_NAME,
        "type": "Microsoft.Authorization/policySetDefinitions",
        "properties": {
            "displayName": "ExfilGuard baseline: Azure ML data-exfiltration rules Azure Policy can decide",
            "policyType": "Custom",
            "description": "The ExfilGuard rules that one resource's own properties decide. The rules that need "
                           "several resources (service endpoint policy contents, required flows, guarded subnets) "
                           "are enforced by ExfilGuard's event path, sweep and what-if scan.",
            "metadata": {"category": CATEGORY, "version": VERSION},
            "parameters": params,
            "policyDefinitions": refs,
        },
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def build(effect: str = "Audit") -> dict[str, str]:
    """File name -> content of the whole export."""
    if effect not in EFFECTS[:2]:
        raise PolicyExportError(f"--effect: expected Audit or Deny, got {effect!r}")
    defs = [definition(e, effect) for e in sorted(exported(), key=lambda e: definition_name(e.rule_id))]
    files = {f"{d['name']}.json": render(d) for d in defs}
    files[INITIATIVE_FILE] = render(initiative(defs))
    return dict(sorted(files.items()))


def export(out_dir: str | os.PathLike[str], effect: str = "Audit") -> list[str]:
    """Write the export to ``out_dir`` (created if needed); the paths written, sorted."""
    files = build(effect)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
            written.append(str(out / name))
    except OSError as exc:
        raise PolicyExportError(f"{out}: cannot write the export ({exc.strerror})") from None
    return written
