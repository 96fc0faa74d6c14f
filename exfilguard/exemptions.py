"""The ``exfilguard-exempt`` tag: a person's written, dated decision to accept a finding.

Format: ``<RULE-ID>[,<RULE-ID>...];until=<YYYY-MM-DD>;reason=<text>``. A tag that does not
parse, or whose date has passed, exempts nothing and is reported as a notice, so a typo can
never silently switch a rule off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from .findings import Exemption

TAG = "exfilguard-exempt"
_RULE = re.compile(r"^EXF-[A-Z]+-\d\d$")


class BadExemption(ValueError):
    pass


def tag_value(tags: Mapping[str, str]) -> str | None:
    """ARM tag names are case-insensitive."""
    for k, v in tags.items():
        if k.lower() == TAG:
            return v
    return None


def parse(value: str, known_rules: frozenset[str] | set[str] | None = None) -> Exemption:
    parts = [p.strip() for p in value.split(";")]
    rules = frozenset(r.strip().upper() for r in parts[0].split(",") if r.strip())
    if not rules:
        raise BadExemption("names no rule")
    for r in rules:
        if not _RULE.match(r) or (known_rules is not None and r not in known_rules):
            raise BadExemption(f"unknown rule ID {r!r}")
    fields: dict[str, str] = {}
    for p in parts[1:]:
        if not p:
            continue
        if "=" not in p:
            raise BadExemption(f"expected key=value, got {p!r}")
        k, v = p.split("=", 1)
        fields[k.strip().lower()] = v.strip()
    until = fields.get("until")
    if not until:
        raise BadExemption("has no until=<YYYY-MM-DD>")
    try:
        date.fromisoformat(until)
    except ValueError:
        raise BadExemption(f"until={until!r} is not a YYYY-MM-DD date") from None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", until):
        raise BadExemption(f"until={until!r} is not a YYYY-MM-DD date")
    reason = fields.get("reason", "")
    if not reason:
        raise BadExemption("has no reason=<text>")
    return Exemption(rules=rules, until=until, reason=reason)


def active(ex: Exemption, today: date) -> bool:
    """Valid up to and including ``until`` (UTC)."""
    return today <= date.fromisoformat(ex.until)
