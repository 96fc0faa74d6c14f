"""Snapshot files (docs/contracts.md section 2): an array, an ARM list page or Resource Graph output.

Whole-file problems (not JSON, wrong shape, too large) raise :class:`SnapshotError` with a
one-line message naming the file; a single malformed resource is skipped with a notice by
:func:`exfilguard.core.picture.build` so it cannot hide the others' findings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from exfilguard.core.picture import Picture, build

DEFAULT_MAX_MB = 32.0


class SnapshotError(ValueError):
    pass


def resources_of(doc: Any, where: str) -> list[Any]:
    """The resource list of a snapshot document, whatever its accepted shape."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        for key in ("value", "data"):
            if key in doc:
                items = doc[key]
                if not isinstance(items, list):
                    raise SnapshotError(f"{where}: '{key}' must be an array of resources, got "
                                        f"{type(items).__name__}")
                return items
        raise SnapshotError(f"{where}: expected an array of resources, {{\"value\": [...]}} or "
                            f"{{\"data\": [...]}}; got an object with keys {', '.join(sorted(doc)[:5]) or 'none'}")
    raise SnapshotError(f"{where}: expected an array of resources, {{\"value\": [...]}} or {{\"data\": [...]}}; "
                        f"got {type(doc).__name__}")


def read(path: str | os.PathLike[str], max_mb: float | None = None) -> list[Any]:
    p = Path(path)
    limit = DEFAULT_MAX_MB if max_mb is None else max_mb
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise SnapshotError(f"{p}: cannot read it ({exc.strerror})") from None
    if size > limit * 1024 * 1024:
        raise SnapshotError(f"{p}: {size / 1048576:.1f} MB is over the {limit:g} MB snapshot limit "
                            "(raise it with --max-snapshot-mb)")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SnapshotError(f"{p}: cannot read it ({exc.strerror})") from None
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError:
        raise SnapshotError(f"{p}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{p}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise SnapshotError(f"{p}: JSON nested too deeply") from None
    return resources_of(doc, str(p))


def load(path: str | os.PathLike[str], extra_guarded: tuple[str, ...] = (), max_mb: float | None = None) -> Picture:
    return build(read(path, max_mb), extra_guarded, source=Path(path).name)
