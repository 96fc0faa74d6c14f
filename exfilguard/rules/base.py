"""What every rule module shares: the evaluation context (rule metadata lives in ``exfilguard.catalog``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import Rule
from ..config import Config
from ..frozen import quick_init
from ..picture import Picture


@quick_init
@dataclass(frozen=True, slots=True)
class Context:
    picture: Picture
    config: Config


__all__ = ["Context", "Rule"]
