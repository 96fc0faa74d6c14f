"""The exfilguard-exempt tag: parsing exactly as baseline.md's "Exemptions" paragraph, and the
governance limit (``max_exemption_days``) that stops a tag from switching protection off for years."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exfilguard.adapters import configfile
from exfilguard.core import config, engine, exemptions
from exfilguard.core.config import Config, ConfigError
from exfilguard.core.picture import build
from exfilguard.core.rules import RULES
from tests import factory as f
from tests.support import by_rule

KNOWN = frozenset(RULES)
TODAY = date(2026, 3, 1)


def parse(value: str):
    return exemptions.parse(value, KNOWN)


# --- parsing -----------------------------------------------------------------------------------

def test_reason_keeps_everything_after_it_semicolons_included():
    ex = parse("EXF-NSG-01;until=2026-04-01;reason=CHG-1; CHG-2")
    assert ex.reason == "CHG-1; CHG-2" and ex.until == "2026-04-01" and ex.rules == {"EXF-NSG-01"}
    assert parse("EXF-NSG-01;until=2026-04-01;reason=a=b;until=2099-01-01").reason == "a=b;until=2099-01-01"


def test_empty_list_items_are_ignored():
    assert parse("EXF-NSG-01,, ,exf-nsg-02,;until=2026-04-01;reason=x").rules == {"EXF-NSG-01", "EXF-NSG-02"}


@pytest.mark.parametrize("value, words", [
    ("EXF-NSG-01;reason=CHG-1;until=2026-04-01", "reason= comes before until="),
    ("EXF-NSG-01,EXF-NOPE-99;until=2026-04-01;reason=x", "unknown rule ID 'EXF-NOPE-99'"),
    ("EXF-NSG-01,nonsense;until=2026-04-01;reason=x", "unknown rule ID 'NONSENSE'"),
    ("until=2026-04-01;reason=x", "unknown rule ID"),
    (";until=2026-04-01;reason=x", "names no rule"),
    ("EXF-NSG-01", "has no until="),
    ("EXF-NSG-01;until=2026-04-01", "has no reason="),
    ("EXF-NSG-01;until=2026-04-01;reason=  ", "empty reason"),
    ("EXF-NSG-01;until=2026-04-01;owner=bob;reason=x", "expected reason=<text> after until="),
    ("EXF-NSG-01;owner=bob;until=2026-04-01;reason=x", "expected until="),
    ("EXF-NSG-01;until=2026-4-1;reason=x", "not a YYYY-MM-DD date"),
    ("EXF-NSG-01;until=2026-02-30;reason=x", "not a YYYY-MM-DD date"),
])
def test_malformed_values_say_why(value, words):
    with pytest.raises(exemptions.BadExemption, match=words.replace("(", r"\(").replace("?", r"\?")):
        parse(value)


def test_an_unknown_rule_invalidates_the_whole_exemption_in_a_scan():
    res = _stack_with_tag(f"EXF-NSG-01,EXF-XXX-01;until={(TODAY + timedelta(days=5)).isoformat()};reason=x")
    ev = engine.evaluate(build(res), Config(), today=TODAY)
    assert by_rule(ev, "EXF-NSG-01") and not any(x.exempt for x in by_rule(ev, "EXF-NSG-01"))
    assert [n.kind for n in ev.notices] == ["malformed-exemption"]


@settings(max_examples=300, deadline=None)
@given(rules=st.lists(st.sampled_from(sorted(KNOWN)), min_size=1, max_size=4),
       empties=st.integers(0, 3),
       until=st.dates(date(2000, 1, 1), date(2100, 12, 31)),
       reason=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
                      max_size=40).filter(lambda r: r.strip()))
def test_any_well_formed_value_round_trips(rules, empties, until, reason):
    """rules first (with ignorable empty items), until=, reason= last holding anything (';' and '=')."""
    value = ",".join(rules + [""] * empties) + f";until={until.isoformat()};reason={reason}"
    ex = parse(value)
    assert ex.rules == set(rules) and ex.until == until.isoformat() and ex.reason == reason.strip()


# --- governance --------------------------------------------------------------------------------

def _stack_with_tag(value: str) -> list[dict]:
    res = f.region_stack("rg-a", "westeurope", 10)
    nsg = next(x for x in res if x["type"] == "Microsoft.Network/networkSecurityGroups")
    nsg["properties"]["securityRules"] = [r for r in nsg["properties"]["securityRules"]
                                          if r["name"] != "deny-internet-out"]
    nsg["tags"] = {"exfilguard-exempt": value}
    return res


def test_91_days_ahead_is_ignored_with_a_notice_and_90_is_honoured():
    ok = _stack_with_tag(f"EXF-NSG-01;until={(TODAY + timedelta(days=90)).isoformat()};reason=CHG-7")
    ev = engine.evaluate(build(ok), Config(), today=TODAY)
    [nsg01] = by_rule(ev, "EXF-NSG-01")
    assert nsg01.exempt and nsg01.exemption.reason == "CHG-7"
    assert not [n for n in ev.notices if "exemption" in n.kind]

    far = _stack_with_tag(f"EXF-NSG-01;until={(TODAY + timedelta(days=91)).isoformat()};reason=CHG-7")
    ev = engine.evaluate(build(far), Config(), today=TODAY)
    [nsg01] = by_rule(ev, "EXF-NSG-01")
    assert not nsg01.exempt and ev.exit_code() == 1
    [notice] = [n for n in ev.notices if "exemption" in n.kind]
    assert notice.kind == "invalid-exemption"
    assert "more than 90 days after 2026-03-01" in notice.message and "2026-05-30" in notice.message


def test_the_limit_is_configurable_by_environment_and_yaml(tmp_path):
    far = _stack_with_tag(f"EXF-NSG-01;until={(TODAY + timedelta(days=200)).isoformat()};reason=CHG-7")
    cfg = config.parse({"EXFILGUARD_MAX_EXEMPTION_DAYS": "365"})
    assert cfg.max_exemption_days == 365
    assert by_rule(engine.evaluate(build(far), cfg, today=TODAY), "EXF-NSG-01")[0].exempt
    strict = config.parse({"EXFILGUARD_MAX_EXEMPTION_DAYS": "7"})
    near = _stack_with_tag(f"EXF-NSG-01;until={(TODAY + timedelta(days=8)).isoformat()};reason=CHG-7")
    assert not by_rule(engine.evaluate(build(near), strict, today=TODAY), "EXF-NSG-01")[0].exempt
    y = tmp_path / "c.yaml"
    y.write_text("maxExemptionDays: 30\n")
    assert configfile.load_config(y, environ={}).max_exemption_days == 30
    assert Config().max_exemption_days == 90


@pytest.mark.parametrize("raw", ["-1", "abc", "3651", "1.5"])
def test_a_bad_limit_names_the_setting(raw):
    with pytest.raises(ConfigError, match="EXFILGUARD_MAX_EXEMPTION_DAYS"):
        config.parse({"EXFILGUARD_MAX_EXEMPTION_DAYS": raw})


def test_judge_kinds():
    assert exemptions.judge("EXF-NSG-01;until=2026-02-28;reason=x", TODAY, known_rules=KNOWN).kind == "expired"
    assert exemptions.judge("EXF-NSG-01;until=2026-03-01;reason=x", TODAY, known_rules=KNOWN).in_force
    assert exemptions.judge("EXF-NSG-01;until=9999-12-31;reason=x", TODAY, known_rules=KNOWN).kind == "too-long"
    assert exemptions.judge("EXF-NSG-01;until=x", TODAY, known_rules=KNOWN).kind == "malformed"
