"""The HTTP layer: stdlib ThreadingHTTPServer speaking HTTP/1.1 with keep-alive on loopback."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.armemu.app import ArmApp
from tests.armemu.messages import Request, error_response

_MAX_BODY = 64 * 1024 * 1024


class _BadRequest(Exception):
    pass


class ArmHTTPServer(ThreadingHTTPServer):
    """Tracks open connections so :meth:`close_connections` can wake idle keep-alive threads at stop."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, app: ArmApp, port: int) -> None:
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients resetting keep-alive connections is normal traffic, not worth a stderr traceback."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ArmEmulator/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections give their thread back eventually
    disable_nagle_algorithm = True  # small request/response pairs would otherwise wait on delayed ACKs
    server: ArmHTTPServer

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_PUT = do_PATCH = do_DELETE = do_POST = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request stderr lines; the request log is the record."""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self.close_connection = True
            bad = error_response(400, "InvalidRequest", str(exc))
            self._write(bad.status, bad.headers, bad.body)
            return
        split = urlsplit(self.path)
        req = Request(
            method=self.command.upper(), path=unquote(split.path), raw_path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)), headers=self.headers, body=body)
        resp = self.server.app.handle(req)
        if resp.drop:
            self.close_connection = True  # the socket closes with no status line: a dropped connection
            return
        self._write(resp.status, resp.headers, resp.body)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError as exc:
            raise _BadRequest("Content-Length is not a number") from exc
        if n < 0 or n > _MAX_BODY:
            raise _BadRequest("Content-Length out of range")
        return self.rfile.read(n)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _BadRequest("bad chunk size") from exc
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > _MAX_BODY:
                raise _BadRequest("body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _write(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Status line, headers and body in one send, so no response waits on Nagle or a delayed ACK."""
        no_body = self.command == "HEAD" or status in (204, 304) or status < 200
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [f"HTTP/1.1 {status} {phrase}", f"Server: {self.server_version}", f"Date: {self.date_time_string()}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if not no_body or self.command == "HEAD":
            lines.append(f"Content-Length: {0 if no_body else len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        try:
            self.wfile.write(head if no_body else head + body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
