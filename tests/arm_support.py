"""Shared set-up for the live-ARM tests: the emulator loaded with a sample, a fast client,
and the two ARM behaviours the emulator does not offer itself.

``ExtendedEmulator`` adds, without touching ``tests/armemu``:

- POST actions on ML computes (``.../computes/<name>/stop``), answered the way AML does
  (202 with an Azure-AsyncOperation monitor; ``start`` with a Location monitor only), so
  quarantine and both LRO shapes can be proven end to end;
- lost answers: a write that *lands* but whose connection is then dropped before the
  client hears back, which is what makes a retried PUT dangerous without If-Match;
- half answers: a read answered 200 with only part of the resource (a body cut short, or a
  JSON object missing members), which a writer must never take for the whole resource.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from exfilguard.adapters.arm import ArmClient
from tests.armemu import ArmEmulator
from tests.armemu.app import ArmApp
from tests.armemu.ids import parse as parse_path
from tests.armemu.messages import Request, Response, error_response, json_response
from tests.factory import SUB

ROOT = Path(__file__).resolve().parent.parent
DRIFTED = ROOT / "samples" / "drifted-subscription.json"
COMPLIANT = ROOT / "samples" / "compliant-subscription.json"

# Values ARM owns and rewrites on writes (etags, provisioning state, the GUID a network
# resource gets on its first PUT); everything else must survive a remediation untouched.
VOLATILE = frozenset({"etag", "provisioningState", "resourceGuid"})

_ACTION = re.compile(r"^(?P<compute>/subscriptions/.+/workspaces/[^/]+/computes/[^/]+)"
                     r"/(?P<action>start|stop|restart)/?$", re.IGNORECASE)


def sample(path: Path = DRIFTED) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


class _ExtendedApp(ArmApp):
    """ArmApp plus compute actions and lost answers (see the module docstring)."""

    lose_answers: list[dict[str, Any]]
    half_answers: list[dict[str, Any]]

    def handle(self, req: Request) -> Response:
        resp = super().handle(req)
        for rule in self.half_answers:
            if rule["count"] > 0 and req.method == "GET" and rule["path"].lower() in req.path.lower() \
                    and resp.status == 200:
                rule["count"] -= 1
                return Response(200, rule["cut"](resp.body), resp.headers, fault="half-answer")
        for rule in self.lose_answers:
            if (rule["count"] > 0 and req.method == rule["method"] and rule["path"].lower() in req.path.lower()
                    and 200 <= resp.status < 300):
                rule["count"] -= 1
                return Response(0, drop=True, fault="lost-answer")
        return resp

    def _serve(self, req: Request) -> Response:
        match = _ACTION.match(req.path) if req.method == "POST" else None
        if match is None:
            return super()._serve(req)
        with self.lock:
            fault = self.plan.pick(req.method, req.path)
        if fault is not None:
            return self._fault(fault, req)
        version = req.param("api-version")
        if not version:
            return error_response(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
        path = parse_path(match["compute"])
        assert path is not None
        with self.lock:
            entry = self.store.get(path.key)
            if entry is None:
                return self._not_found(path)
            body = self.store.snapshot_body(entry)
            inner = body.setdefault("properties", {}).setdefault("properties", {})
            inner["state"] = {"stop": "Stopped", "start": "Running", "restart": "Running"}[match["action"].lower()]
            self.store.write(path, body, mode="set")
            op = self.ops.start("put", path, self._location(path), self.lro_delay)
        v = quote(version, safe="")
        if match["action"].lower() == "start":  # some RPs answer with a Location monitor only
            return Response(202, b"", [("Location", f"{self.base_url}{op.results_path}?api-version={v}"),
                                       ("Retry-After", "0")])
        monitor = f"{self.base_url}{op.monitor_path}?api-version={v}"
        return json_response(202, {}, [("Azure-AsyncOperation", monitor), ("Retry-After", "0")])


class ExtendedEmulator(ArmEmulator):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app.__class__ = _ExtendedApp
        self._app.lose_answers = []
        self._app.half_answers = []

    def lose_answer(self, method: str, path: str, count: int = 1) -> None:
        """Serve the next ``count`` matching requests, then drop the connection before answering."""
        self._app.lose_answers.append({"method": method.upper(), "path": path, "count": count})

    def half_answer(self, path: str, cut: Callable[[bytes], bytes] | None = None, count: int = 1) -> None:
        """Answer the next ``count`` GETs of ``path`` with 200 and ``cut(body)`` (default: its first half)."""
        self._app.half_answers.append({"path": path, "count": count,
                                       "cut": cut or (lambda body: body[: len(body) // 2])})


def emulator(resources: Any = None, **kwargs: Any) -> ExtendedEmulator:
    kwargs.setdefault("lro_delay", 0.05)
    return ExtendedEmulator(sample() if resources is None else resources, **kwargs)


def client_for(emu: ArmEmulator, **kwargs: Any) -> ArmClient:
    """A client tuned for the emulator: millisecond polls and backoff, same retry policy."""
    kwargs.setdefault("polling_interval", 0.01)
    kwargs.setdefault("backoff_factor", 0.005)
    kwargs.setdefault("backoff_max", 0.05)
    return ArmClient(SUB, emu.url, **kwargs)


def stable(value: Any) -> Any:
    """``value`` without what ARM rewrites on every write (etags, provisioningState)."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def property_paths(value: Any, path: str = "") -> Iterator[str]:
    """Every property path in a body; named list items by name, other list items as ``[]``."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in VOLATILE:
                continue
            sub = f"{path}.{k}" if path else k
            yield sub
            yield from property_paths(v, sub)
    elif isinstance(value, list):
        for item in value:
            name = item.get("name") if isinstance(item, dict) else None
            yield from property_paths(item, f"{path}[{name}]" if isinstance(name, str) else f"{path}[]")


def state(emu: ArmEmulator) -> dict[str, dict]:
    """Every stored top-level resource (children arrive inline) by lowercase ID."""
    out = {}
    for rid in emu.ids():
        parsed = parse_path(rid)
        if parsed is not None and len(parsed.types) == 1:
            body = emu.get_body(rid)
            assert body is not None
            out[rid.lower()] = body
    for rid in emu.ids():
        parsed = parse_path(rid)
        if parsed is not None and parsed.type.lower().endswith(("/computes", "/versions")):
            body = emu.get_body(rid)
            assert body is not None
            out[rid.lower()] = body
    return out
