"""The ``exfilguard-exempt`` tag: a person's written, dated decision to accept a finding.

Format (baseline.md, "Exemptions"): ``<RULE-ID>[,<RULE-ID>...];until=<YYYY-MM-DD>;reason=<text>``.
The rule list comes first (empty items between commas are ignored; one unknown rule ID makes
the whole exemption invalid), then ``until=``, and ``reason=`` last: everything after it,
``;`` included, is the reason. Any other order or field is malformed.

Exemptions switch protection off, so they are governed: ``until`` may be at most
``max_exemption_days`` after the day the tag is evaluated. A tag that does not parse, whose
date has passed or lies too far ahead exempts nothing and is reported as a notice, so a typo
(or ``until=9999-12-31``) can never silently switch a rule off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from exfilguard.core.findings import Exemption

TAG = "exfilguard-exempt"
DEFAULT_MAX_DAYS = 90
_RULE = re.compile(r"^EXF-[A-Z]+-\d\d$")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class BadExemption(ValueError):
    pass


def tag_value(tags: Mapping[str, str]) -> str | None:
    """ARM tag names are case-insensitive."""
    for k, v in tags.items():
        if k.lower() == TAG:
            return v
    return None


def _field(text: str, name: str) -> str | None:
    """The value of ``name=...`` when ``text`` is that field (key case and spaces tolerated)."""
    key, sep, value = text.partition("=")
    if sep and key.strip().lower() == name:
        return value
    return None


def parse(value: str, known_rules: frozenset[str] | set[str] | None = None) -> Exemption:
    """The exemption a tag value states; raises :class:`BadExemption` saying what is wrong."""
    rule_part, sep, rest = value.partition(";")
    rules = frozenset(r.strip().upper() for r in rule_part.split(",") if r.strip())
    if not rules:
        raise BadExemption("names no rule (the rule list comes first)")
    for r in sorted(rules):
        if not _RULE.match(r) or (known_rules is not None and r not in known_rules):
            raise BadExemption(f"unknown rule ID {r!r}")
    if not sep:
        raise BadExemption("has no until=<YYYY-MM-DD> after the rule list")
    until_part, sep, reason_part = rest.partition(";")
    until = _field(until_part, "until")
    if until is None:
        if _field(until_part, "reason") is not None:
            raise BadExemption("reason= comes before until=; the order is rules;until=<YYYY-MM-DD>;reason=<text>")
        raise BadExemption(f"expected until=<YYYY-MM-DD> after the rule list, got {until_part.strip()!r}")
    until = until.strip()
    if not _DATE.fullmatch(until):
        raise BadExemption(f"until={until!r} is not a YYYY-MM-DD date")
    try:
        date.fromisoformat(until)
    except ValueError:
        raise BadExemption(f"until={until!r} is not a YYYY-MM-DD date") from None
    if not sep:
        raise BadExemption("has no reason=<text> (a reason is required)")
    reason = _field(reason_part, "reason")
    if reason is None:
        raise BadExemption(f"expected reason=<text> after until=, got {reason_part.split(';')[0].strip()!r} "
                           "(the only fields are the rule list, until= and reason=, in that order)")
    reason = reason.strip()
    if not reason:
        raise BadExemption("has an empty reason (a reason is required)")
    return Exemption(rules=rules, until=until, reason=reason)


def active(ex: Exemption, today: date) -> bool:
    """Valid up to and including ``until`` (UTC)."""
    return today <= date.fromisoformat(ex.until)


def too_far(ex: Exemption, today: date, max_days: int) -> bool:
    """Whether ``until`` lies more than ``max_days`` after ``today`` (the governance limit)."""
    return date.fromisoformat(ex.until) > today + timedelta(days=max_days)


Status = Literal["active", "expired", "too-long", "malformed"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one tag value amounts to on one day: an exemption in force, or why not.

    ``kind`` is ``active``, ``expired``, ``too-long`` or ``malformed`` (the last three exempt
    nothing); ``message`` says why in words for a notice or an alert."""

    kind: Status
    exemption: Exemption | None
    message: str = ""

    @property
    def in_force(self) -> bool:
        return self.kind == "active"


def judge(value: str, today: date, *, known_rules: frozenset[str] | set[str] | None = None,
          max_days: int = DEFAULT_MAX_DAYS) -> Verdict:
    """Parse ``value`` and apply the date rules: the one place that decides whether a tag exempts."""
    try:
        ex = parse(value, known_rules)
    except BadExemption as exc:
        return Verdict("malformed", None, f"ignored: {exc}")
    if not active(ex, today):
        return Verdict("expired", ex, f"expired on {ex.until}")
    if too_far(ex, today, max_days):
        limit = today + timedelta(days=max_days)
        return Verdict("too-long", ex, f"ignored: until={ex.until} is more than {max_days} days after "
                                       f"{today.isoformat()} (max_exemption_days); the latest allowed date is "
                                       f"{limit.isoformat()}")
    return Verdict("active", ex, f"{', '.join(sorted(ex.rules))} exempt until {ex.until}: {ex.reason}")
