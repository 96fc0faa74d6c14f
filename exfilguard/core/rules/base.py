"""What every rule module shares: the evaluation context (rule metadata lives in ``exfilguard.core.catalog``)."""

from __future__ import annotations

from dataclasses import dataclass

from exfilguard.core.catalog import Rule
from exfilguard.core.config import Config
from exfilguard.core.picture import Picture


@dataclass(frozen=True, slots=True)
class Context:
    picture: Picture
    config: Config


__all__ = ["Context", "Rule"]
