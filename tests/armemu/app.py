"""ARM semantics over plain request/response values; the HTTP layer is in :mod:`.server`.

Every public method takes the emulator's one lock around store access, serialises response
bodies while holding it (composed bodies share structure with the store), and runs user hooks
after releasing it so hooks may call back into the emulator.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from tests.armemu import arm
from tests.armemu.admin import handle_admin
from tests.armemu.faults import Change, Fault, FaultPlan, fault_body, format_seconds
from tests.armemu.ids import ArmPath, key, parse
from tests.armemu.log import Kind, LogRecord, RequestLog
from tests.armemu.lro import Operations
from tests.armemu.messages import Request, Response, dumps, error_response, json_response
from tests.armemu.store import Entry, Store, StoreError

WriteHook = Callable[[str, "dict[str, Any] | None"], None]
"""Called after a client's PUT/PATCH/DELETE with the resource ID and new body (None when deleted)."""

ADMIN_PREFIX = "/_emulator/"
_POLL = re.compile(r"^/subscriptions/[^/]+/providers/[^/]+/locations/[^/]+/(operations|operationresults)/([^/]+)/?$",
                   re.IGNORECASE)


def classify(method: str, path: str) -> Kind:
    if path.startswith(ADMIN_PREFIX):
        return "admin"
    if method in ("GET", "HEAD"):
        return "poll" if _POLL.match(path) else "read"
    return "action" if method == "POST" else "write"


def encode_token(token: str) -> str:
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()


def _logged_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


class ArmApp:
    def __init__(self, *, clock: Callable[[], float], lro_delay: float, page_size: int) -> None:
        self.lock = threading.RLock()
        self.store = Store(clock)
        self.plan = FaultPlan()
        self.log = RequestLog()
        self.ops = Operations(clock)
        self.hooks: list[WriteHook] = []
        self.lro_delay = lro_delay
        self.page_size = page_size
        self.base_url = ""

    # ---- entry point ---------------------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        """Answer one request; never raises, so no traceback reaches a client."""
        started = time.time()
        kind = classify(req.method, req.path)
        try:
            if kind == "admin":
                resp = handle_admin(self, req)
            else:
                resp = self._serve(req)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            resp = error_response(500, "InternalServerError", f"The emulator failed: {type(exc).__name__}.")
        with self.lock:
            self.log.append(LogRecord(
                method=req.method, path=req.path, query=dict(req.query), status=0 if resp.drop else resp.status,
                kind=kind, authorization=req.header("Authorization") is not None,
                if_match=req.header("If-Match"), if_none_match=req.header("If-None-Match"),
                body=_logged_body(req.body), time=started, fault=resp.fault))
        resp.headers.append(("x-ms-request-id", str(uuid.uuid4())))
        return resp

    # ---- Python-side state access --------------------------------------------------------------

    def get_body(self, resource_id: str) -> dict[str, Any] | None:
        with self.lock:
            e = self.store.get(key(resource_id))
            return self.store.snapshot_body(e) if e is not None else None

    def set_body(self, resource_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        path = parse(resource_id)
        if path is None or path.is_collection:
            raise ValueError(f"not an ARM resource id: {resource_id!r}")
        with self.lock:
            entry, _ = self.store.write(path, json.loads(json.dumps(body)), mode="set")
            return self.store.snapshot_body(entry)

    def delete_body(self, resource_id: str) -> bool:
        with self.lock:
            return self.store.delete(key(resource_id)) is not None

    def arm_change(self, resource_id: str, change: Change | None, count: int) -> None:
        with self.lock:
            self.plan.arm_change(resource_id, change, count)

    # ---- ARM -----------------------------------------------------------------------------------

    def _serve(self, req: Request) -> Response:
        latency = self.plan.latency
        if latency > 0:
            time.sleep(latency)
        with self.lock:
            fault = self.plan.pick(req.method, req.path)
        if fault is not None:
            return self._fault(fault, req)
        version = req.param("api-version")
        if not version:
            return error_response(400, "MissingApiVersionParameter",
                                  "The api-version query parameter (?api-version=) is required for all requests.")
        poll = _POLL.match(req.path)
        if poll and req.method in ("GET", "HEAD"):
            return self._poll(poll.group(1).lower() == "operationresults", poll.group(2), version)
        path = parse(req.path)
        if path is None:
            return error_response(400, "InvalidRequestUri", f"The emulator does not serve '{req.path}'.")
        if path.types[-1].lower() == arm.DEFAULT_RULES_SEGMENT and req.method not in ("GET", "HEAD"):
            return error_response(405, "MethodNotAllowed", "Default security rules are read-only.")
        if path.is_collection:
            if req.method == "GET":
                return self._list(req, path, version)
            return error_response(405 if req.method != "POST" else 400, "UnsupportedOperation",
                                  f"The emulator does not support {req.method} on '{req.path}'.")
        handler = {"GET": self._get, "HEAD": self._get, "PUT": self._put, "PATCH": self._patch,
                   "DELETE": self._delete}.get(req.method)
        if handler is None:
            return error_response(405, "UnsupportedOperation", f"The emulator does not support {req.method}.")
        return handler(req, path, version)

    def _fault(self, fault: Fault, req: Request) -> Response:
        if fault.drop:
            return Response(0, drop=True, fault="reset")
        assert fault.status is not None
        headers = [("Retry-After", format_seconds(fault.retry_after))] if fault.retry_after is not None else []
        if fault.status == 403:
            headers.append(("x-ms-failure-cause", "gateway"))
        body = fault_body(fault.status, req.method, parse(req.path), req.path, fault.retry_after)
        resp = json_response(fault.status, body, headers)
        resp.fault = str(fault.status)
        return resp

    def _get(self, req: Request, path: ArmPath, version: str) -> Response:
        with self.lock:
            if path.types[-1].lower() == arm.DEFAULT_RULES_SEGMENT:
                return self._get_default_rule(path)
            e = self.store.get(path.key)
            if e is None:
                return self._not_found(self.store.missing_ancestor(path) or path)
            payload, etag = dumps(self.store.compose(e)), e.etag
            change = self.plan.take_change(e.key)
            if change is not None:
                self._apply_change(e, change.change)
        if req.method == "HEAD":
            return Response(204, headers=[("ETag", etag)])
        return Response(200, payload, [("Content-Type", "application/json; charset=utf-8"), ("ETag", etag)])

    def _get_default_rule(self, path: ArmPath) -> Response:
        owner = path.parent
        assert owner is not None
        nsg = self.store.get(owner.key)
        if nsg is None or nsg.type_key != arm.NSG_TYPE:
            return self._not_found(self.store.missing_ancestor(owner) or owner)
        for rule in self.store.default_rules(nsg):
            if str(rule.get("name", "")).lower() == path.name.lower():
                return json_response(200, rule, [("ETag", nsg.etag)])
        return self._not_found(path)

    def _apply_change(self, e: Entry, change: Change | None) -> None:
        """Someone else's write between the client's read and its write: new content, new etag."""
        body = self.store.snapshot_body(e)
        if callable(change):
            result = change(body)
            body = result if result is not None else body
        elif isinstance(change, dict):
            body = arm.merge_patch(body, change)
        self.store.write(e.path, body, mode="set")

    def _list(self, req: Request, path: ArmPath, version: str) -> Response:
        raw_token = req.param("$skipToken")
        try:
            token = decode_token(raw_token) if raw_token else None
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return error_response(400, "InvalidSkipToken", "The $skipToken is not valid.")
        with self.lock:
            owner = path.parent
            if owner is not None:
                check = owner.parent if owner.type.lower() in arm.PATH_ONLY_TYPES else owner
                missing = self.store.missing_ancestor(check) if check is not None else None
                if missing is not None:
                    return self._not_found(missing)
            items, next_token = self.store.page(path, token, max(1, self.page_size))
            page: dict[str, Any] = {"value": items}
            if next_token is not None:
                page["nextLink"] = (f"{self.base_url}{req.raw_path}?api-version={quote(version, safe='')}"
                                    f"&$skipToken={encode_token(next_token)}")
            payload = dumps(page)
        return Response(200, payload, [("Content-Type", "application/json; charset=utf-8")])

    def _put(self, req: Request, path: ArmPath, version: str) -> Response:
        body, bad = self._json_object(req)
        if bad is not None:
            return bad
        with self.lock:
            e = self.store.get(path.key)
            if self._precondition_failed(req, e):
                return self._precondition_response()
            missing = self.store.missing_ancestor(path)
            if missing is not None and missing.key != path.key:
                return self._not_found(missing)
            if path.type.lower() in arm.TRACKED_TYPES and not body.get("location"):
                return error_response(400, "LocationRequired", "The location property is required for this "
                                      "definition.")
            state = "Creating" if e is None else "Updating"
            try:
                entry, created = self.store.write(path, body, mode="put", pending_state=state,
                                                  lro_delay=self.lro_delay)
            except StoreError as exc:
                return error_response(exc.status, exc.code, exc.message)
            payload, etag = dumps(self.store.compose(entry, state=state)), entry.etag
            op = self.ops.start("put", entry.path, self._location(entry.path), self.lro_delay)
            hook_body = self.store.snapshot_body(entry) if self.hooks else None
            rid = entry.id
        self._run_hooks(rid, hook_body)
        return Response(201 if created else 200, payload, [
            ("Content-Type", "application/json; charset=utf-8"), ("ETag", etag),
            ("Azure-AsyncOperation", f"{self.base_url}{op.monitor_path}?api-version={quote(version, safe='')}"),
            ("Retry-After", "0"),
        ])

    def _patch(self, req: Request, path: ArmPath, version: str) -> Response:
        patch, bad = self._json_object(req)
        if bad is not None:
            return bad
        with self.lock:
            e = self.store.get(path.key)
            if e is None:
                if req.header("If-Match"):
                    return self._precondition_response()
                return self._not_found(self.store.missing_ancestor(path) or path)
            if self._precondition_failed(req, e):
                return self._precondition_response()
            merged = arm.merge_patch(self.store.snapshot_body(e), {k: v for k, v in patch.items() if k != "tags"})
            if "tags" in patch:  # ARM's update-tags replaces the whole map
                if patch["tags"] is None:
                    merged.pop("tags", None)
                else:
                    merged["tags"] = patch["tags"]
            try:
                entry, _ = self.store.write(e.path, merged, mode="put")
            except StoreError as exc:
                return error_response(exc.status, exc.code, exc.message)
            payload, etag = dumps(self.store.compose(entry)), entry.etag
            hook_body = self.store.snapshot_body(entry) if self.hooks else None
            rid = entry.id
        self._run_hooks(rid, hook_body)
        return Response(200, payload, [("Content-Type", "application/json; charset=utf-8"), ("ETag", etag)])

    def _delete(self, req: Request, path: ArmPath, version: str) -> Response:
        with self.lock:
            e = self.store.get(path.key)
            if e is None:
                missing = self.store.missing_ancestor(path)
                if missing is not None and missing.key != path.key:
                    return self._not_found(missing)
                if req.header("If-Match"):
                    return self._precondition_response()
                return Response(204)
            if self._precondition_failed(req, e):
                return self._precondition_response()
            location = self._location(e.path)
            self.store.delete(e.key)
            op = self.ops.start("delete", e.path, location, self.lro_delay)
            rid = e.id
        self._run_hooks(rid, None)
        v = quote(version, safe="")
        return Response(202, b"", [
            ("Location", f"{self.base_url}{op.results_path}?api-version={v}"),
            ("Azure-AsyncOperation", f"{self.base_url}{op.monitor_path}?api-version={v}"),
            ("Retry-After", "0"),
        ])

    def _poll(self, results: bool, op_id: str, version: str) -> Response:
        with self.lock:
            op = self.ops.get(op_id)
            if op is None:
                return error_response(404, "NotFound", f"Operation {op_id} was not found.")
            done = self.ops.done(op)
            if not results:
                headers = [] if done else [("Retry-After", "0")]
                return json_response(200, self.ops.status_body(op), headers)
            if not done:
                location = f"{self.base_url}{op.results_path}?api-version={quote(version, safe='')}"
                return Response(202, b"", [("Location", location), ("Retry-After", "0")])
            e = self.store.get(key(op.resource_id)) if op.kind == "put" else None
            if e is None:
                return Response(204)
            return json_response(200, self.store.compose(e), [("ETag", e.etag)])

    # ---- helpers -------------------------------------------------------------------------------

    def _json_object(self, req: Request) -> tuple[dict[str, Any], Response | None]:
        try:
            body = req.json()
        except ValueError as exc:
            return {}, error_response(400, "InvalidRequestContent",
                                      f"The request content was invalid and could not be deserialized: {exc}")
        if not isinstance(body, dict):
            return {}, error_response(400, "InvalidRequestContent", "The request content must be a JSON object.")
        return body, None

    @staticmethod
    def _precondition_failed(req: Request, e: Entry | None) -> bool:
        if_match = req.header("If-Match")
        if if_match is not None:
            if e is None:
                return True
            if if_match != "*" and e.etag not in {t.strip() for t in if_match.split(",")}:
                return True
        if_none_match = req.header("If-None-Match")
        if if_none_match is not None and req.method == "PUT" and e is not None:
            return if_none_match == "*" or e.etag in {t.strip() for t in if_none_match.split(",")}
        return False

    @staticmethod
    def _precondition_response() -> Response:
        return error_response(412, "PreconditionFailed",
                              "The condition specified using HTTP conditional header(s) is not met.")

    @staticmethod
    def _not_found(missing: ArmPath) -> Response:
        if len(missing.names) == 1:
            where = (f"under resource group '{missing.resource_group}'" if missing.resource_group is not None
                     else f"in subscription '{missing.subscription}'")
            return error_response(404, "ResourceNotFound",
                                  f"The Resource '{missing.namespace}/{missing.types[0]}/{missing.name}' {where} "
                                  "was not found. For more details please go to "
                                  "https://aka.ms/ARMResourceNotFoundFix")
        return error_response(404, "NotFound", f"Resource {missing.resource_id} not found.")

    def _location(self, path: ArmPath) -> object:
        top = self.store.get(path.top.key)
        return top.body.get("location") if top is not None else None

    def _run_hooks(self, resource_id: str, body: dict[str, Any] | None) -> None:
        for hook in list(self.hooks):
            try:
                hook(resource_id, json.loads(json.dumps(body)) if body is not None else None)
            except Exception:
                traceback.print_exc(file=sys.stderr)
