"""Every type an event can re-read has a closure to read around it (flows/closure.AROUND)."""

from __future__ import annotations

import pytest

from exfilguard.core import operations, types
from exfilguard.flows import closure


def test_every_re_read_type_has_a_closure_and_nothing_else_does() -> None:
    reread = {types.get(op.reread_type) for op in operations._TABLE}
    assert None not in reread
    assert {t.key for t in reread if t is not None} == set(closure.AROUND)
    for t in types.TYPES:
        if t.around_parent:
            assert t.parent_key in closure.AROUND, t.arm_type


def test_a_type_without_a_closure_is_refused() -> None:
    reader = closure.ClosureReader(client=None, state=None, config=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not evaluated"):
        reader.around("Microsoft.Compute/virtualMachines", "/subscriptions/s/resourceGroups/r/providers/"
                      "Microsoft.Compute/virtualMachines/vm")


def test_a_deleted_resource_of_a_plain_type_leaves_nothing_to_evaluate() -> None:
    reader = closure.ClosureReader(client=None, state=None, config=None)  # type: ignore[arg-type]
    rid = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/ipGroups/g"
    read = reader.around(types.IP_GROUP.arm_type, rid, deleted=True)
    assert read.gone == [rid] and read.notes == [f"{rid} was deleted; nothing left to evaluate"]
