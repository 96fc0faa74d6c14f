"""Words a person needs next to a rule ID: where Microsoft explains it, and what to do.

A rule's article and manual step come from the rule catalog (``exfilguard.core.catalog``), so the
card, the email, the preview, SARIF and docs/rules.md never disagree; a rule without a written
step gets a sensible default instead of an empty "next step".
"""

from __future__ import annotations

from exfilguard.core import types
from exfilguard.core.catalog import GUIDE_EXFIL, guidance_url, manual_step

__all__ = ["GUIDE_EXFIL", "friendly_type", "guidance_url", "next_step"]


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
        return f"Apply the fix by hand: {fix_summary}." if fix_summary else (manual_step(rule_id)
                                                                          or "Correct the resource by hand.")
    manual = manual_step(rule_id)
    if action_kind == "would_fix":
        return (f"Audit mode: ExfilGuard would {fix_summary}. Apply it by hand, or switch this rule to "
                "remediate mode.") if fix_summary else (manual or "Correct the resource by hand.")
    return manual or (f"Correct the resource: {fix_summary}." if fix_summary else "Correct the resource by hand.")


def friendly_type(resource_type: str) -> str:
    """A reader's name for an ARM type ("Subnet"), or the ARM type itself when unknown."""
    t = types.get(resource_type)
    return t.label if t is not None and t.label else (resource_type or "Resource")
