"""The layers are visible in the folders, and no module imports from a layer above its own.

Why: the core stays pure (testable without Azure, the same for snapshot, live and event
sources) only if nothing in it reaches for an adapter, and a flow written once stays shared
only if the Function app and the CLI both call it rather than each other. This test reads
every import statement (module level and lazy, inside functions) with ``ast``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "exfilguard"

# What each layer may import from the package, besides itself.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "adapters": {"core"},
    "render": {"core"},
    "alerts": {"core"},
    "flows": {"core", "adapters", "render", "alerts"},
    "app": {"core", "adapters", "render", "alerts", "flows"},
    "cli": {"core", "adapters", "render", "alerts", "flows"},
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "exfilguard" and parts[1] in ALLOWED else None


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Absolute names of every exfilguard module (or name in one) the file imports."""
    own = _module_of(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return [(line, name) for line, name in found if name.startswith("exfilguard.")]


def _violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        mine = _layer(_module_of(path))
        if mine is None:
            continue
        for line, name in _imports(path):
            theirs = _layer(name)
            if theirs is None:
                if name.split(".")[1] not in ("__version__",):
                    out.append(f"{path.relative_to(ROOT)}:{line} imports {name}, which is in no layer")
            elif theirs != mine and theirs not in ALLOWED[mine]:
                out.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {name} ({theirs})")
    return out


def test_every_module_of_the_package_sits_in_a_layer_folder() -> None:
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], f"modules outside the layer folders: {loose}"
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(ALLOWED), folders ^ set(ALLOWED)


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    assert _violations() == []


@pytest.mark.parametrize(("source", "line", "expected"), [
    ("exfilguard/core/x.py", "from exfilguard.adapters import state", True),
    ("exfilguard/core/x.py", "from ..adapters.state import State", True),
    ("exfilguard/core/x.py", "def f():\n    from exfilguard.flows import live", True),
    ("exfilguard/flows/x.py", "from exfilguard.app.runtime import services", True),
    ("exfilguard/cli/x.py", "from exfilguard.app import event_handler", True),
    ("exfilguard/app/x.py", "from exfilguard.flows import live", False),
    ("exfilguard/core/x.py", "from . import model", False),
])
def test_the_check_sees_each_kind_of_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            source: str, line: str, expected: bool) -> None:
    root = tmp_path / "repo"
    for layer in ALLOWED:
        (root / "exfilguard" / layer).mkdir(parents=True)
        (root / "exfilguard" / layer / "__init__.py").write_text("")
    (root / source).write_text(line + "\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", root)
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", root / "exfilguard")
    assert bool(_violations()) is expected
