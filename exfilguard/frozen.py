"""Quicker constructors for the frozen, slotted dataclasses built on every hot path.

``@dataclass(frozen=True)`` writes an ``__init__`` that stores each field through
``object.__setattr__`` looked up anew for every field; for a view with twenty fields that is
most of what building it costs, and a sweep builds hundreds of thousands of them.
:func:`quick_init` replaces it with an equivalent one: the same parameters, defaults and
default factories, each field stored with its slot's own setter, so instances are as frozen
as before (assignment still raises ``FrozenInstanceError``), then ``__post_init__`` when the
class has one (as the generated ``__init__`` does; no InitVar fields). Classes without slots
keep the generated ``__init__``.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, TypeVar

T = TypeVar("T", bound=type)


class _Missing:
    def __repr__(self) -> str:
        return "<factory default>"


_FACTORY = _Missing()


def quick_init(cls: T) -> T:
    """Apply below ``@dataclass(frozen=True, slots=True)`` (i.e. write it above)."""
    if "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: quick_init needs a slotted dataclass")
    params, lines = [], []
    ns: dict[str, Any] = {"_FACTORY": _FACTORY}
    for f in fields(cls):  # type: ignore[arg-type]
        if not f.init:
            raise TypeError(f"{cls.__name__}.{f.name}: init=False fields are not supported")
        if f.default_factory is not MISSING:
            ns[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_FACTORY")
            lines.append(f"    if {f.name} is _FACTORY:\n        {f.name} = _factory_{f.name}()\n")
        elif f.default is not MISSING:
            ns[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        else:
            params.append(f.name)
        ns[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        lines.append(f"    _set_{f.name}(self, {f.name})\n")
    if hasattr(cls, "__post_init__"):
        lines.append("    self.__post_init__()\n")
    # Built from the dataclass's own field names only.
    exec(f"def __init__(self, {', '.join(params)}):\n{''.join(lines) or '    pass'}\n", ns)
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = f"Build a {cls.__name__} (all fields as the dataclass declares them)."
    cls.__init__ = init  # type: ignore[misc]
    return cls
