"""Words a person needs next to a rule ID: where Microsoft explains it, and what to do.

Kept as data in one place so the card, the email and the preview never disagree, and so a
rule added to the catalog gets a sensible default instead of an empty "next step".
"""

from __future__ import annotations

PREVENT_EXFILTRATION = "https://learn.microsoft.com/azure/machine-learning/how-to-prevent-data-loss-exfiltration"
SECURE_TRAINING_VNET = "https://learn.microsoft.com/azure/machine-learning/how-to-secure-training-vnet"
MANAGED_NETWORK = "https://learn.microsoft.com/azure/machine-learning/how-to-managed-network"

_FAMILY_URLS: tuple[tuple[str, str], ...] = (
    ("EXF-SN-", PREVENT_EXFILTRATION),
    ("EXF-SEP-", PREVENT_EXFILTRATION),
    ("EXF-NSG-", PREVENT_EXFILTRATION),
    ("EXF-CMP-", SECURE_TRAINING_VNET),
    ("EXF-WS-04", MANAGED_NETWORK),
    ("EXF-WS-05", MANAGED_NETWORK),
    ("EXF-WS-", PREVENT_EXFILTRATION),
    ("EXF-ENV-", PREVENT_EXFILTRATION),
)


def guidance_url(rule_id: str) -> str:
    """Microsoft's article for the rule's family; the exfiltration article when unknown."""
    upper = rule_id.upper()
    for prefix, url in _FAMILY_URLS:
        if upper.startswith(prefix):
            return url
    return PREVENT_EXFILTRATION


# What a person does about a finding ExfilGuard will not (or may not) fix itself. Rules that
# ExfilGuard can fix get their fix summary instead (see :func:`next_step`).
_MANUAL_STEPS: dict[str, str] = {
    "EXF-SN-02": "Attach the service endpoint policy that allows only the workspace storage accounts "
                 "to the subnet, or configure one so ExfilGuard can attach it.",
    "EXF-SN-03": "Attach the guarded network security group to the subnet, or configure one so "
                 "ExfilGuard can attach it.",
    "EXF-NSG-04": "Narrow the rule to the protocol and ports the service tag needs (see the guidance).",
    "EXF-CMP-01": "Recreate the compute in a subnet of the workspace's virtual network (a compute's "
                  "subnet cannot be changed), or move the workspace to a managed network.",
    "EXF-CMP-02": "Ask the owner to recreate the compute without a public IP (enableNodePublicIp: false); "
                  "the setting cannot be changed in place. Stop the instance meanwhile if it is idle.",
    "EXF-CMP-03": "Recreate the compute instance, or scale the cluster to zero nodes and recreate it: it "
                  "predates simplified node communication.",
    "EXF-CMP-04": "Turn off public SSH access (recreate the instance without it; on a cluster set "
                  "remoteLoginPortPublicAccess to Disabled).",
    "EXF-WS-02": "Add a private endpoint to the workspace and approve it first; then disable public network "
                 "access (in remediate mode ExfilGuard does it once an approved endpoint exists). Disabling it "
                 "without one locks every user out of the studio and the SDK.",
    "EXF-WS-01": "Add a private endpoint to the workspace and approve it, then disable public access.",
    "EXF-WS-03": "Add private endpoints (blob and file) to the storage account and approve them.",
    "EXF-WS-04": "Decide whether the workspace moves to AllowOnlyApprovedOutbound. The change is one-way: "
                 "list the outbound rules your jobs need first.",
    "EXF-WS-05": "Remove the outbound FQDN rule, or add the host to the allow-list if it is approved.",
    "EXF-ENV-01": "Rebuild the environment from an mcr.microsoft.com image instead of viennaglobal.azurecr.io.",
}


def next_step(rule_id: str, action_kind: str, fix_summary: str, *, actor: str = "") -> str:
    """The one thing a person should do next, given what ExfilGuard already did."""
    who = f" ({actor})" if actor else ""
    if action_kind == "fixed":
        return (f"Nothing to undo. Find out why the change was made{who} and correct the template, "
                "pipeline or policy that made it, or the next deployment will undo the fix again.")
    if action_kind == "exempt":
        return ("Nothing until the exemption ends; from the day after, ExfilGuard fixes or alerts this "
                "finding again. Correct the resource before then.")
    if action_kind == "fix_failed":
        return f"Apply the fix by hand: {fix_summary}." if fix_summary else _MANUAL_STEPS.get(
            rule_id.upper(), "Correct the resource by hand.")
    manual = _MANUAL_STEPS.get(rule_id.upper())
    if action_kind == "would_fix":
        return (f"Audit mode: ExfilGuard would {fix_summary}. Apply it by hand, or switch this rule to "
                "remediate mode.") if fix_summary else (manual or "Correct the resource by hand.")
    return manual or (f"Correct the resource: {fix_summary}." if fix_summary else "Correct the resource by hand.")


_FRIENDLY_TYPES: dict[str, str] = {
    "microsoft.network/networksecuritygroups": "Network security group",
    "microsoft.network/networksecuritygroups/securityrules": "NSG security rule",
    "microsoft.network/virtualnetworks": "Virtual network",
    "microsoft.network/virtualnetworks/subnets": "Subnet",
    "microsoft.network/serviceendpointpolicies": "Service endpoint policy",
    "microsoft.network/serviceendpointpolicies/serviceendpointpolicydefinitions": "Service endpoint policy definition",
    "microsoft.machinelearningservices/workspaces": "Machine Learning workspace",
    "microsoft.machinelearningservices/workspaces/computes": "Machine Learning compute",
    "microsoft.machinelearningservices/workspaces/environments/versions": "Machine Learning environment version",
    "microsoft.storage/storageaccounts": "Storage account",
}


def friendly_type(resource_type: str) -> str:
    """A reader's name for an ARM type ("Subnet"), or the ARM type itself when unknown."""
    return _FRIENDLY_TYPES.get(resource_type.lower(), resource_type or "Resource")
