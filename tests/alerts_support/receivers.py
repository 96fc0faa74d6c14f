"""Real loopback HTTP servers standing in for Teams Workflows and the ACS Email REST API.

They run in a thread of the test process on 127.0.0.1 with an OS-chosen port, record every
request with its arrival time (``time.monotonic`` at the start of handling), and answer
from a script, so tests assert on what actually crossed a socket.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    arrived: float

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Reply:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class LoopbackReceiver:
    """Answers POSTs from ``script`` (one :class:`Reply` per request, then ``default``)."""

    def __init__(self, script: list[Reply] | None = None, default: Reply | None = None) -> None:
        self.script: deque[Reply] = deque(script or [])
        self.default = default or Reply(202)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rec = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, arrived)
                reply = receiver.respond(rec)
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if reply.body:
                    self.wfile.write(reply.body)

            do_POST = _handle
            do_GET = _handle

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def respond(self, rec: Received) -> Reply:
        with self._lock:
            self.received.append(rec)
            return self.script.popleft() if self.script else self.default

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def posts(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.method == "POST"]


class AcsStandIn(LoopbackReceiver):
    """The two calls EmailClient.begin_send makes: POST /emails:send (202 + Operation-Location),
    then GET of the operation until it reports Succeeded (after ``running_polls`` Running)."""

    def __init__(self, *, fail_first: int = 0, running_polls: int = 1) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.running_polls = running_polls
        self._polls: dict[str, int] = {}

    def respond(self, rec: Received) -> Reply:
        with self._lock:
            self.received.append(rec)
            if rec.method == "POST" and rec.path.startswith("/emails:send"):
                if self.fail_first > 0:
                    self.fail_first -= 1
                    return Reply(400, {"Content-Type": "application/json"},
                                 json.dumps({"error": {"code": "BadRequest", "message": "scripted"}}).encode())
                op = uuid.uuid4().hex
                self._polls[op] = 0
                location = f"{self.base_url}/emails/operations/{op}?api-version=2025-09-01"
                return Reply(202, {"Operation-Location": location, "Retry-After": "0",
                                   "Content-Type": "application/json"},
                             json.dumps({"id": op, "status": "Running"}).encode())
            if rec.method == "GET" and rec.path.startswith("/emails/operations/"):
                op = rec.path.split("/")[3].split("?")[0]
                self._polls[op] = self._polls.get(op, 0) + 1
                status = "Running" if self._polls[op] <= self.running_polls else "Succeeded"
                return Reply(200, {"Content-Type": "application/json", "Retry-After": "0"},
                             json.dumps({"id": op, "status": status}).encode())
            return Reply(404)

    def sends(self) -> list[Received]:
        return [r for r in self.posts() if r.path.startswith("/emails:send")]
