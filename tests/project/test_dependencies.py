"""Dependencies have one source (pyproject.toml) and a lock compiled from it: requirements.txt
(what the Functions host installs) and requirements-dev.txt pin every transitive package with
hashes, agree with each other and with pyproject, and every direct runtime dependency is one the
product imports. `make lock` recompiles them."""

from __future__ import annotations

import ast
import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)((?:\s*\\\n\s*--hash=sha256:[0-9a-f]{64})+)", re.MULTILINE)


def _lock(name: str) -> dict[str, str]:
    text = (ROOT / name).read_text()
    pins = {canonicalize_name(m.group(1)): m.group(2) for m in PIN.finditer(text)}
    entries = re.findall(r"^[A-Za-z0-9_.\-]+(?=[=<>!~\[ ])", text, re.MULTILINE)
    assert len(pins) == len(entries), f"{name}: an entry without an exact version and hashes"
    return pins


def _closure(reqs: list[Requirement]) -> set[str]:
    """Every distribution the requirements pull in on the deployment's platform (installed metadata)."""
    seen: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in reqs]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen and not extras:
            continue
        seen.add(name)
        for spec in metadata.requires(req.name) or []:
            sub = Requirement(spec)
            if sub.marker is not None:
                wanted = [e for e in extras] or [""]
                if not any(sub.marker.evaluate({**default_environment(), "extra": e}) for e in wanted):
                    continue
            todo.append((sub, frozenset(sub.extras)))
    return seen


def test_the_runtime_lock_is_pyprojects_dependencies_and_nothing_else() -> None:
    pins = _lock("requirements.txt")
    direct = [Requirement(r) for r in PYPROJECT["dependencies"]]
    for req in direct:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not in requirements.txt: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])
    assert set(pins) == _closure(direct), "requirements.txt is not the closure of pyproject.toml: run `make lock`"


def test_the_dev_lock_pins_the_same_versions_plus_the_extras() -> None:
    runtime, dev = _lock("requirements.txt"), _lock("requirements-dev.txt")
    assert {k: dev.get(k) for k in runtime} == runtime
    extras = [Requirement(r) for group in ("cli", "dev") for r in PYPROJECT["optional-dependencies"][group]]
    for req in extras:
        assert req.specifier.contains(dev[canonicalize_name(req.name)], prereleases=True), req
    assert set(dev) == _closure([Requirement(r) for r in PYPROJECT["dependencies"]] + extras)


def test_cli_only_packages_stay_out_of_the_function_app() -> None:
    assert {"pyyaml", "rich"} <= {canonicalize_name(Requirement(r).name)
                                  for r in PYPROJECT["optional-dependencies"]["cli"]}
    assert not {"pyyaml", "rich"} & set(_lock("requirements.txt"))


def _imported_modules() -> set[str]:
    names: set[str] = set()
    for path in [ROOT / "function_app.py", *(ROOT / "exfilguard").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
    return names


def _modules_of(dist: str) -> set[str]:
    """The importable packages a distribution installs (``azure.eventgrid``, not just ``azure``)."""
    out = set()
    for f in metadata.files(dist) or []:
        parts = f.parts
        if parts and parts[-1] == "__init__.py" and not any(p.endswith((".dist-info", ".data")) for p in parts):
            out.add(".".join(parts[:-1]))
    return {m for m in out if not any(m.startswith(o + ".") for o in out)}


def test_every_direct_runtime_dependency_is_imported_by_the_product() -> None:
    imported = _imported_modules()
    for spec in PYPROJECT["dependencies"]:
        dist = Requirement(spec).name
        modules = _modules_of(dist)
        assert modules, dist
        assert any(i == m or i.startswith(m + ".") for i in imported for m in modules), \
            f"{dist} is a dependency but the product never imports {sorted(modules)}"
