"""Views of ARM bodies read before, kept between events and reused only for an equal body.

An event re-reads the changed resource and a few neighbours (an NSG rule write reads the
NSG, its VNet and a compute). The neighbours almost never changed since the last event
about them, and parsing them again is most of what such an event costs besides the NSG.

A hit needs the new body to be *equal* to the one the view was parsed from (a deep JSON
comparison, in C), not merely to carry the same ID or etag: ML computes and workspaces have
no etag, and an etag is only as trustworthy as whoever wrote the body. Parsing is a pure
function of the body (``model``'s contract), so an equal body gets an equal view, and the
view's ``raw`` is equal to the body just read, so a fix applied to it writes what ARM has.
What changed (the event's resource: its etag at least is new) never compares equal and is
parsed afresh, but with the previous view at hand: an NSG's rules whose JSON is unchanged
but for the etag ARM stamps on all of them at each write are taken over from it
(``model._rules_since``), so a rule write parses the written rule, not the whole NSG.
"""

from __future__ import annotations

import threading
from typing import Any

from exfilguard.core.model import Resource
from exfilguard.core.types import parse_resource


class ViewCache:
    """A bounded map of resource ID (as written) to its last view, oldest entries dropped first.

    Thread-safe: the Functions worker may run invocations on several threads."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._views: dict[str, Resource] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def parse(self, body: Any) -> Resource | None:
        """:func:`exfilguard.core.types.parse_resource` of ``body``, reusing an equal body's view."""
        rid = body.get("id") if type(body) is dict else None
        if type(rid) is str:
            seen = self._views.get(rid)
            if seen is not None and seen.raw == body:
                self.hits += 1
                return seen
            view = parse_resource(body, seen)  # a misfit raises BadResource and nothing is kept
        else:
            view = parse_resource(body)
        self.misses += 1
        if view is not None and type(rid) is str:
            with self._lock:
                self._views.pop(rid, None)  # re-inserted last: the most recently read
                self._views[rid] = view
                while len(self._views) > self.max_entries:
                    del self._views[next(iter(self._views))]
        return view

    def __len__(self) -> int:
        return len(self._views)

    def clear(self) -> None:
        with self._lock:
            self._views.clear()
