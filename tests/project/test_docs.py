"""The documentation stays true: docs/rules.md is the catalog rendered, the README is short and
its links resolve, and every consumer of rule metadata reads the one catalog."""

from __future__ import annotations

import io
import re
from pathlib import Path

from exfilguard.cli import main as cli
from exfilguard.core import catalog
from exfilguard.core.rules import FAMILIES
from exfilguard.render import report, rulesdoc
from tests.support import load_sample, run

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def test_rules_doc_is_the_catalog_rendered() -> None:
    committed = (ROOT / "docs" / "rules.md").read_text()
    assert committed == rulesdoc.render(), "docs/rules.md is stale: run `make docs`"


def test_rules_doc_names_every_rule_with_its_words() -> None:
    text = rulesdoc.render()
    for rule in catalog.CATALOG:
        section = text.split(f"### {rule.id}\n", 1)[1].split("\n### ", 1)[0]
        for words in (rule.title, rule.checks, rule.fix, rule.rationale, catalog.ARTICLES[rule.guidance]):
            assert words in section, (rule.id, words)


def test_every_catalog_rule_is_evaluated_by_exactly_one_family() -> None:
    owners: dict[str, list[str]] = {}
    for family in FAMILIES:
        for rule in family.RULES:
            assert rule is catalog.RULES[rule.id], f"{rule.id} is defined outside the catalog"
            owners.setdefault(rule.id, []).append(family.__name__)
    assert {rid: len(mods) for rid, mods in owners.items()} == {r.id: 1 for r in catalog.CATALOG}


def test_cli_and_sarif_list_the_catalog() -> None:
    out = io.StringIO()
    assert cli.main(["rules", "--format", "tsv"], out) == 0
    assert [line.split("\t")[0] for line in out.getvalue().splitlines()] == [r.id for r in catalog.CATALOG]
    sarif = report.to_sarif(run(load_sample("drifted-subscription.json")))
    driver = sarif["runs"][0]["tool"]["driver"]["rules"]
    assert [(r["id"], r["helpUri"], r["shortDescription"]["text"]) for r in driver] == [
        (r.id, r.guidance, r.title) for r in catalog.CATALOG]


def test_readme_is_short_and_its_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 10_240
    head = "\n".join(readme.splitlines()[:10])
    assert "make scan" in head and "make test" in head
    linked = {m.group(1) for m in LINK.finditer(readme) if not m.group(1).startswith("http")}
    assert {"docs/rules.md", "docs/contracts.md", "docs/function-app.md", "docs/alerts.md", "docs/deploy.md",
            "docs/performance.md"} <= linked
    for target in linked:
        assert (ROOT / target).is_file(), target


def test_links_between_docs_resolve() -> None:
    for page in sorted((ROOT / "docs").glob("*.md")):
        for m in LINK.finditer(page.read_text()):
            target = m.group(1)
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            assert (page.parent / target).exists(), f"{page.name}: {target}"
