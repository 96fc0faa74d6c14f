"""Quicker constructors for the frozen, slotted dataclasses built on every hot path.

``@dataclass(frozen=True)`` writes an ``__init__`` that stores each field through
``object.__setattr__`` looked up anew for every field; for a view with twenty fields that is
most of what building it costs, and a sweep builds hundreds of thousands of them.
:func:`quick_init` replaces it with an equivalent one: the same parameters, defaults and
default factories, then ``__post_init__`` when the class has one (as the generated
``__init__`` does; no InitVar fields). Classes without slots keep the generated ``__init__``.

How the fields are stored: a frozen class refuses plain assignment, so each field would go
through its slot's setter, a call per field. Instead, an instance of the very class (not of a
subclass) is switched for the duration of ``__init__`` to an unfrozen twin: a subclass that
adds no slots (so the memory layout is the same, which is what lets an object change class)
and assigns like ``object``. Python stores into its slots directly, about four times faster,
and the instance is switched back before anyone else can see it, as frozen as before:
assignment still raises ``FrozenInstanceError`` and ``type()`` is the class. Classes with
fewer than ``SWAP_MIN_FIELDS`` fields, and subclasses, use the setters.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, TypeVar

T = TypeVar("T", bound=type)


class _Missing:
    def __repr__(self) -> str:
        return "<factory default>"


_FACTORY = _Missing()


# From this many fields on, a frozen instance is filled as its unfrozen twin (see quick_init):
# below it the two class switches cost about what the plain stores save.
SWAP_MIN_FIELDS = 4


def quick_init(cls: T) -> T:
    """Apply below ``@dataclass(frozen=True, slots=True)`` (i.e. write it above)."""
    if "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: quick_init needs a slotted dataclass")
    frozen = cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    all_fields = fields(cls)  # type: ignore[arg-type]
    twin = _unfrozen_twin(cls) if frozen and len(all_fields) >= SWAP_MIN_FIELDS else None
    params, prologue, setters, stores = [], [], [], []
    ns: dict[str, Any] = {"_FACTORY": _FACTORY, "_cls": cls, "_twin": twin, "_type": type,
                          "_set_class": object.__setattr__}
    for f in all_fields:
        if not f.init:
            raise TypeError(f"{cls.__name__}.{f.name}: init=False fields are not supported")
        if f.default_factory is not MISSING:
            ns[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_FACTORY")
            prologue.append(f"    if {f.name} is _FACTORY:\n        {f.name} = _factory_{f.name}()\n")
        elif f.default is not MISSING:
            ns[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        else:
            params.append(f.name)
        ns[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        setters.append(f"_set_{f.name}(self, {f.name})")
        stores.append(f"self.{f.name} = {f.name}")
    body = "".join(prologue)
    if not frozen:
        body += "".join(f"    {x}\n" for x in stores)
    elif twin is None:
        body += "".join(f"    {x}\n" for x in setters)
    else:
        # Only an instance of this very class is switched: a subclass's has its own layout.
        body += ("    if _type(self) is _cls:\n        _set_class(self, '__class__', _twin)\n"
                 + "".join(f"        {x}\n" for x in stores) + "        self.__class__ = _cls\n    else:\n"
                 + "".join(f"        {x}\n" for x in setters))
    if hasattr(cls, "__post_init__"):
        body += "    self.__post_init__()\n"
    # Built from the dataclass's own field names only.
    exec(f"def __init__(self, {', '.join(params)}):\n{body or '    pass'}\n", ns)
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = f"Build a {cls.__name__} (all fields as the dataclass declares them)."
    cls.__init__ = init  # type: ignore[misc]
    return cls


def _unfrozen_twin(cls: type) -> type:
    """A subclass with no slots of its own (so the same memory layout, which lets an instance
    change between the two) and the plain attribute assignment of ``object``: Python stores
    into its slots directly, where the frozen class must call each slot's setter."""
    return type(f"_Unfrozen{cls.__name__}", (cls,), {
        "__slots__": (), "__setattr__": object.__setattr__, "__delattr__": object.__delattr__,
        "__module__": cls.__module__, "__qualname__": f"_Unfrozen{cls.__qualname__}",
        "__doc__": f"{cls.__name__} while its __init__ fills it (never seen outside it)."})
