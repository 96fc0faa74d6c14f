"""The repository stands on its own: nothing in the product, its tests, benchmarks or scripts
reads a path outside the clone (a user's clone has nothing beside it)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("exfilguard", "tests", "bench", "scripts")
# A path that leaves the repository for a sibling "shared" folder, however it is spelled.
OUTSIDE = re.compile(r"""\.\./shared|["']shared["']\)?\s*/|/\s*["']shared["']|parent\s*/\s*["']shared""")


def _files() -> list[Path]:
    files = [ROOT / "Makefile", ROOT / "function_app.py"]
    for top in CHECKED:
        files += [p for p in (ROOT / top).rglob("*") if p.is_file() and p.suffix in {".py", ".sh", ".md", ""}
                  and "__pycache__" not in p.parts]
    return files


def test_no_file_reads_outside_the_repository() -> None:
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in _files() for n, line in
                 enumerate(p.read_text(errors="replace").splitlines(), 1) if OUTSIDE.search(line)]
    assert offenders == []


def test_the_check_catches_each_spelling() -> None:
    word = "sha" + "red"  # spelled apart so this file does not trip its own check
    for line in (f'SHARED = REPO.parent / "{word}"', f"open('../{word}/spec/baseline.md')",
                 f"x = Path('{word}') / 'fixtures'"):
        assert OUTSIDE.search(line), line


def test_every_fixture_folder_has_its_source() -> None:
    sources = (ROOT / "tests" / "data" / "SOURCES.md").read_text()
    for folder in sorted({p.parent.relative_to(ROOT / "tests" / "data") for p in
                          (ROOT / "tests" / "data").rglob("*.json")}):
        assert str(folder) == "." or f"`{folder}/" in sources or f"`{folder.parts[0]}/" in sources, folder
