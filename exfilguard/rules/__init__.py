"""The rule catalog: every rule of baseline.md, grouped by the resource family it reads.

A family module holds its rules' metadata (:class:`~exfilguard.rules.base.Rule`) next to an
``evaluate(ctx)`` generator. Adding a rule touches one module and its test.
"""

from __future__ import annotations

from . import compute, environment, firewall, managed_network, nsg, sep, subnet, workspace
from .base import Context, Rule

FAMILIES = (subnet, sep, nsg, firewall, compute, workspace, managed_network, environment)

RULES: dict[str, Rule] = {r.id: r for fam in FAMILIES for r in fam.RULES}

__all__ = ["FAMILIES", "RULES", "Context", "Rule"]
