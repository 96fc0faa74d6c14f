"""The rules, grouped by the resource family each reads (docs/rules.md lists them).

A family module takes its rules' metadata from :mod:`exfilguard.catalog` and holds an
``evaluate(ctx)`` generator. Adding a rule: its catalog entry, its family's code, its test.
"""

from __future__ import annotations

from ..catalog import RULES, Rule
from . import compute, environment, nsg, sep, subnet, workspace
from .base import Context

FAMILIES = (subnet, sep, nsg, compute, workspace, environment)

__all__ = ["FAMILIES", "RULES", "Context", "Rule"]
