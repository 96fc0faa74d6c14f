"""The rules, grouped by the resource family each reads (docs/rules.md lists them).

A family module takes its rules' metadata from :mod:`exfilguard.core.catalog` and holds an
``evaluate(ctx)`` generator. Adding a rule: its catalog entry, its family's code, its test.
"""

from __future__ import annotations

from exfilguard.core.catalog import RULES, Rule
from exfilguard.core.rules import compute, environment, firewall, managed_network, nsg, sep, subnet, workspace
from exfilguard.core.rules.base import Context

FAMILIES = (subnet, sep, nsg, firewall, compute, workspace, managed_network, environment)

__all__ = ["FAMILIES", "RULES", "Context", "Rule"]
