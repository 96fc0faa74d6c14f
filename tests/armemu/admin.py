"""``/_emulator/`` endpoints: the Python API for an emulator running in another process.

Admin requests are logged (kind ``admin``) but never meet injected faults or latency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.armemu.faults import ConcurrentChange, FailureRate, Fault
from tests.armemu.ids import key
from tests.armemu.messages import Request, Response, error_response, json_response

if TYPE_CHECKING:
    from tests.armemu.app import ArmApp


def handle_admin(app: ArmApp, req: Request) -> Response:
    name = req.path[len("/_emulator/"):].strip("/").lower()
    route = _ROUTES.get((req.method, name))
    if route is None:
        return error_response(404, "NotFound", f"No emulator endpoint {req.method} /_emulator/{name}.")
    try:
        return route(app, req)
    except ValueError as exc:
        return error_response(400, "InvalidEmulatorRequest", str(exc))


def _log(app: ArmApp, req: Request) -> Response:
    status = req.param("status")
    with app.lock:
        records = app.log.select(kind=req.param("kind"), method=req.param("method"), path=req.param("path"),
                                 status=int(status) if status else None)
    return json_response(200, {"value": [r.to_json() for r in records]})


def _reset_log(app: ArmApp, req: Request) -> Response:
    with app.lock:
        return json_response(200, {"cleared": app.log.clear()})


def _get_faults(app: ArmApp, req: Request) -> Response:
    with app.lock:
        return json_response(200, app.plan.to_json())


def _post_faults(app: ArmApp, req: Request) -> Response:
    configure(app, req.json())
    return _get_faults(app, req)


def _clear_faults(app: ArmApp, req: Request) -> Response:
    with app.lock:
        app.plan.clear()
        app.plan.latency = 0.0
    return _get_faults(app, req)


def configure(app: ArmApp, data: Any) -> None:
    """Apply a fault configuration atomically: everything is validated before anything changes."""
    if not isinstance(data, dict):
        raise ValueError("the fault configuration must be a JSON object")
    if "status" in data or "drop" in data:
        data = {"faults": [data]}
    faults = [Fault.from_json(f) for f in _list(data, "faults")]
    latency = data.get("latency")
    if latency is not None and (not isinstance(latency, int | float) or latency < 0):
        raise ValueError("latency must be a non-negative number of seconds")
    rate_given = "failureRate" in data
    rate = FailureRate.from_json(data["failureRate"]) if data.get("failureRate") is not None else None
    changes: list[tuple[str, ConcurrentChange]] = []
    for item in _list(data, "concurrentModifications"):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ValueError("each concurrent modification needs an 'id'")
        patch, count = item.get("patch"), item.get("count", 1)
        if patch is not None and not isinstance(patch, dict):
            raise ValueError("a concurrent modification 'patch' must be a JSON merge patch object")
        if not isinstance(count, int) or count < 1:
            raise ValueError("a concurrent modification 'count' must be a positive integer")
        changes.append((item["id"], ConcurrentChange(patch, count)))
    with app.lock:
        if data.get("clear"):
            app.plan.clear()
        app.plan.faults.extend(faults)
        if latency is not None:
            app.plan.latency = float(latency)
        if rate_given:
            app.plan.failure_rate = rate
        for rid, change in changes:
            app.plan.changes.setdefault(key(rid), []).append(change)


def _list(data: dict[str, Any], name: str) -> list[Any]:
    value = data.get(name) or []
    if not isinstance(value, list):
        raise ValueError(f"'{name}' must be a list")
    return value


def _resource_id(req: Request) -> str:
    rid = req.param("id")
    if not rid:
        raise ValueError("pass the resource as ?id=<ARM id>")
    return rid


def _get_resource(app: ArmApp, req: Request) -> Response:
    rid = _resource_id(req)
    body = app.get_body(rid)
    if body is None:
        return error_response(404, "ResourceNotFound", f"{rid} is not stored.")
    return json_response(200, body, [("ETag", body["etag"])])


def _put_resource(app: ArmApp, req: Request) -> Response:
    body = req.json()
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    stored = app.set_body(_resource_id(req), body)
    return json_response(200, stored, [("ETag", stored["etag"])])


def _delete_resource(app: ArmApp, req: Request) -> Response:
    if not app.delete_body(_resource_id(req)):
        return error_response(404, "ResourceNotFound", "not stored")
    return Response(204)


def _get_config(app: ArmApp, req: Request) -> Response:
    with app.lock:
        return json_response(200, {"lroDelay": app.lro_delay, "pageSize": app.page_size,
                                   "latency": app.plan.latency, "url": app.base_url})


def _post_config(app: ArmApp, req: Request) -> Response:
    data = req.json()
    if not isinstance(data, dict):
        raise ValueError("the configuration must be a JSON object")
    lro_delay, page_size, latency = data.get("lroDelay"), data.get("pageSize"), data.get("latency")
    for name, value in (("lroDelay", lro_delay), ("latency", latency)):
        if value is not None and (not isinstance(value, int | float) or value < 0):
            raise ValueError(f"{name} must be a non-negative number")
    if page_size is not None and (not isinstance(page_size, int) or page_size < 1):
        raise ValueError("pageSize must be a positive integer")
    with app.lock:
        if lro_delay is not None:
            app.lro_delay = float(lro_delay)
        if page_size is not None:
            app.page_size = page_size
        if latency is not None:
            app.plan.latency = float(latency)
    return _get_config(app, req)


_ROUTES = {
    ("GET", "log"): _log,
    ("POST", "reset-log"): _reset_log,
    ("GET", "faults"): _get_faults,
    ("POST", "faults"): _post_faults,
    ("DELETE", "faults"): _clear_faults,
    ("GET", "resource"): _get_resource,
    ("PUT", "resource"): _put_resource,
    ("DELETE", "resource"): _delete_resource,
    ("GET", "config"): _get_config,
    ("POST", "config"): _post_config,
}
