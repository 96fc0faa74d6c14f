"""Long-running operations as ARM's network RP runs them: an Azure-AsyncOperation status monitor."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from tests.armemu.ids import ArmPath

_CAP = 200_000  # forget the oldest operations past this many; pollers never look back that far


@dataclass(frozen=True, slots=True)
class Operation:
    op_id: str
    kind: Literal["put", "delete"]
    resource_id: str
    monitor_path: str
    """``/subscriptions/s/providers/NS/locations/L/operations/ID``; ``operationResults`` for Location."""
    started_at: str
    deadline: float

    @property
    def results_path(self) -> str:
        return self.monitor_path.replace("/operations/", "/operationResults/")


def _iso_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def location_slug(location: object) -> str:
    """ARM's operation URLs use the compact region name ("West US" -> "westus")."""
    if not isinstance(location, str) or not location.strip():
        return "global"
    return location.replace(" ", "").lower()


class Operations:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._ops: OrderedDict[str, Operation] = OrderedDict()

    def start(self, kind: Literal["put", "delete"], resource: ArmPath, location: object,
              delay: float) -> Operation:
        op_id = str(uuid.uuid4())
        monitor = (f"/subscriptions/{resource.subscription}/providers/{resource.namespace}"
                   f"/locations/{location_slug(location)}/operations/{op_id}")
        op = Operation(op_id, kind, resource.resource_id, monitor, _iso_now(), self._clock() + delay)
        self._ops[op_id.lower()] = op
        while len(self._ops) > _CAP:
            self._ops.popitem(last=False)
        return op

    def get(self, op_id: str) -> Operation | None:
        return self._ops.get(op_id.lower())

    def done(self, op: Operation) -> bool:
        return self._clock() >= op.deadline

    def status_body(self, op: Operation) -> dict[str, str]:
        body = {"id": op.monitor_path, "name": op.op_id, "startTime": op.started_at}
        if self.done(op):
            body.update(status="Succeeded", endTime=_iso_now())
        else:
            body["status"] = "InProgress"
        return body
