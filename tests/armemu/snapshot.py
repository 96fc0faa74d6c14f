"""Snapshot input in the shapes the product accepts (docs/contracts.md section 2)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Source = str | os.PathLike[str] | Sequence[Mapping[str, Any]] | Mapping[str, Any] | None

# Keys Resource Graph adds that an ARM GET body does not carry.
_GRAPH_ONLY = ("tenantId", "resourceGroup", "subscriptionId")


class SnapshotError(ValueError):
    """The snapshot is not JSON or not one of the accepted shapes; names the file and the problem."""


def read_resources(source: Source) -> list[dict[str, Any]]:
    """Resource objects from a file path, a list, or a ``{"value"|"data": [...]}`` mapping."""
    if source is None:
        return []
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"{path}: {exc}") from exc
        where = str(path)
    else:
        data = copy.deepcopy(source)
        where = "snapshot"
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and isinstance(data.get("value"), list):
        return data["value"]
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return [_strip_graph(r) for r in data["data"]]
    raise SnapshotError(f"{where}: expected a JSON array, {{\"value\": [...]}} or {{\"data\": [...]}}")


def _strip_graph(resource: Any) -> Any:
    if isinstance(resource, dict):
        return {k: v for k, v in resource.items() if k not in _GRAPH_ONLY}
    return resource
