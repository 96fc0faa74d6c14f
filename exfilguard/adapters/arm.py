"""Live reads and writes through the Azure management SDKs, as raw ARM JSON.

Raw JSON both ways is the point: the engine interprets ARM bodies itself
(:mod:`exfilguard.core.model`), and the writer must send back every property it does not mean to
change, including ones the SDK models do not know. So the SDK models are never the
in-memory form of a resource:

- Network resources (NSGs and rules, VNets and subnets, service endpoint policies and their
  definitions, route tables, firewalls, firewall policies and their rule collection groups, IP
  groups) are read and written with ``NetworkManagementClient``'s own operations at API
  2024-05-01, with a ``cls=`` hook that returns the response JSON and the request body passed
  as bytes.
- Machine Learning writes (a compute's PATCH or stop) go through
  ``MachineLearningServicesMgmtClient``'s pipeline with API version 2025-12-01: the stable SDK
  (1.0.1) models API 2020-08-01, which lacks ``enableNodePublicIp``, ``publicNetworkAccess``
  and ``managedNetwork``. Machine Learning reads need nothing of that SDK but a pipeline, so
  they take the shared one below: an event's decision, which only reads a compute, does not
  import the SDK (0.05-0.1 s at a cold start).
- Lists, Machine Learning reads, storage accounts (private endpoint connections only) and pages
  after the first are raw requests through one ``ARMPipelineClient`` of azure-mgmt-core
  (:attr:`ArmClient.pipeline`) holding the same policies. Each page's JSON is kept byte for byte.

Importing ``azure-mgmt-network`` costs 0.3-0.45 s (its one operations module defines every
operation class and imports every model and typed dict; no smaller part of the package can be
imported without its ``__init__`` importing all of it); it is paid on the first network read
of a process, never at import (docs/performance.md, ``cold_first_decision_s``).

Every request passes azure-core's ``RetryPolicy`` (429 with Retry-After, 5xx and connection
errors, bounded exponential backoff, here with jitter) and a counting policy that records each
try by verb, so a run can report exactly what it cost.

The SDK packages are imported inside the methods that need them: importing this module (a
Function trigger that only parses an event, a snapshot scan) stays cheap.
"""

from __future__ import annotations

import functools
import io
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from exfilguard.adapters import endpoint as endpoint_mod
from exfilguard.core import ids, types
from exfilguard.core.types import ML_API_VERSION, NETWORK_API_VERSION, STORAGE_API_VERSION

__all__ = ["ML_API_VERSION", "NETWORK_API_VERSION", "STORAGE_API_VERSION", "ArmClient", "ArmError"]

DEFAULT_POLL_SECONDS = 5.0
MIN_POLL_SECONDS = 0.05
DEFAULT_LRO_TIMEOUT = 1800.0

_POLL_PATH = re.compile(r"/providers/[^/]+/locations/[^/]+/(operations|operationresults|operationstatuses)/",
                        re.IGNORECASE)
_NO_ACTION = re.compile(r"does not have authorization to perform action '([^']+)'", re.IGNORECASE)
_NO_LINKED = re.compile(r"does not have permission to perform action\(s\) '([^']+)'", re.IGNORECASE)
_SCOPE = re.compile(r"over scope '([^']+)'", re.IGNORECASE)
_SAFE = "/$'()*,;=:@!-._~"


class ArmError(Exception):
    """ARM refused or could not be reached; says which resource and, for 403, which permission.

    ``status`` is None when no HTTP answer came back (connection errors after all retries).
    ``replayed`` is True when the request was sent more than once (a retry after a lost
    answer), so a 412 may be the echo of this client's own write that landed.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 action: str | None = None, resource_id: str = "", scope: str | None = None,
                 replayed: bool = False, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.action = action
        self.resource_id = resource_id
        self.scope = scope
        self.replayed = replayed
        self._retryable = retryable

    @property
    def transient(self) -> bool:
        """Worth another read-modify-write: throttling, server faults, no answer at all."""
        if self._retryable is not None:
            return self._retryable
        return self.status is None or self.status in (408, 429) or self.status >= 500

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"resourceId": self.resource_id, "status": self.status, "code": self.code,
                               "message": self.message}
        if self.action:
            out["missingPermission"] = self.action
        if self.scope:
            out["scope"] = self.scope
        return out


def _error_from_body(status: int | None, payload: Any, fallback: str, resource_id: str,
                     replayed: bool = False) -> ArmError:
    err = payload.get("error") if isinstance(payload, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    text = err.get("message") if isinstance(err, dict) else None
    return _error(status, code if isinstance(code, str) else None, text if isinstance(text, str) else fallback,
                  resource_id, replayed)


def _error(status: int | None, code: str | None, text: str, resource_id: str, replayed: bool = False) -> ArmError:
    action = scope = None
    if status == 403:
        found = _NO_ACTION.search(text) or _NO_LINKED.search(text)
        action = found.group(1) if found else None
        where = _SCOPE.search(text)
        scope = where.group(1) if where else resource_id
    if action:
        message = (f"{resource_id}: ARM answered 403 {code or 'Forbidden'}: the identity lacks permission "
                   f"'{action}' on {scope}")
    else:
        label = f"{status} {code or ''}".strip() if status is not None else "no answer"
        message = f"{resource_id}: ARM answered {label}: {text}"
    return ArmError(message, status=status, code=code, action=action, resource_id=resource_id, scope=scope,
                    replayed=replayed)


def _raw_json(pipeline_response: Any, deserialized: Any, headers: Any) -> Any:
    """``cls=`` hook for SDK operations: the response JSON exactly as ARM sent it."""
    return pipeline_response.http_response.json()


def _network_operations(type_key: str) -> str | None:
    """The ``NetworkManagementClient`` operation group a network type is read and written with."""
    t = types.get(type_key)
    return t.network_operations if t is not None else None


def _pipeline_response(pipeline_response: Any, deserialized: Any, headers: Any) -> Any:
    """``cls=`` hook for ``begin_*``: hand back the initial response to poll it ourselves."""
    return pipeline_response


class _NoCredential:
    """Stands in where the SDK insists on a credential but no token may be sent (loopback)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        raise RuntimeError("no token is requested for a loopback http:// ARM endpoint")


@functools.cache
def _policy_classes() -> tuple[type, type]:
    """The two pipeline policies we add, built on first use so azure.core loads lazily."""
    from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy

    class JitteredRetryPolicy(RetryPolicy):
        """azure-core's retry with "equal jitter": many clients throttled together must not
        come back in lockstep, which plain exponential backoff would make them do."""

        def get_backoff_time(self, settings: dict[str, Any]) -> float:
            base = super().get_backoff_time(settings)
            return random.uniform(base / 2, base) if base > 0 else 0.0

    class RequestCounter(SansIOHTTPPolicy):
        """Counts every try (it sits after the retry policy) by verb, polls apart."""

        def __init__(self, counts: dict[str, int], lock: threading.Lock) -> None:
            self._counts = counts
            self._lock = lock

        def on_request(self, request: Any) -> None:
            http = request.http_request
            kind = "poll" if _POLL_PATH.search(urlsplit(http.url).path) else http.method.upper()
            with self._lock:
                self._counts[kind] = self._counts.get(kind, 0) + 1

    return JitteredRetryPolicy, RequestCounter


class RedirectRefused(Exception):
    """ARM answered with a redirect to another host; it is not followed."""


def _guard_errors() -> tuple[type[Exception], ...]:
    from exfilguard.adapters.budget import BudgetExceeded

    return BudgetExceeded, RedirectRefused


@functools.cache
def _guard_policy_classes() -> tuple[type, type, type]:
    """The deadline-aware retry, the request budget and the same-host redirect policies."""
    return _bounded_retry_policy(), _budget_policy(), _same_host_redirect_policy()


def _bounded_retry_policy() -> type:
    jittered, _ = _policy_classes()

    class BoundedRetryPolicy(jittered):  # type: ignore[misc, valid-type]
        """Retry-After and backoff waits capped (``max_retry_after``) and never past the
        invocation's deadline: a server asking for 10 minutes gets a quick failure instead of
        an HTTP answer that never comes."""

        def __init__(self, *, deadline: Any = None, max_retry_after: float | None = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.deadline = deadline
            self.max_retry_after = max_retry_after

        def get_retry_after(self, response: Any) -> float | None:
            wait = super().get_retry_after(response)
            if wait is None:
                return None
            if self.max_retry_after is not None:
                wait = min(wait, self.max_retry_after)
            if self.deadline is not None:
                self.deadline.cap(wait, "ARM's Retry-After")
            return wait

        def get_backoff_time(self, settings: dict[str, Any]) -> float:
            wait = super().get_backoff_time(settings)
            if self.deadline is not None and wait > 0:
                self.deadline.cap(wait, "retry backoff")
            return wait

    return BoundedRetryPolicy


def _budget_policy() -> type:
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    from exfilguard.adapters.budget import BudgetExceeded

    class BudgetPolicy(SansIOHTTPPolicy):
        """Every try takes a token from the instance's ARM budget and stays inside the deadline."""

        def __init__(self, budget: Any, deadline: Any) -> None:
            self.budget = budget
            self.deadline = deadline

        def on_request(self, request: Any) -> None:
            method = request.http_request.method
            if self.deadline is not None:
                if self.deadline.expired():
                    raise BudgetExceeded(f"the {self.deadline.seconds:g}s deadline passed before the next ARM request")
                left = self.deadline.remaining()
                options = request.context.options
                for name in ("connection_timeout", "read_timeout"):
                    if name in options:
                        options[name] = max(0.1, min(float(options[name]), left))
            if self.budget is not None:
                self.budget.acquire(method, self.deadline)

        def on_response(self, request: Any, response: Any) -> None:
            if self.budget is not None:
                http = response.http_response
                self.budget.observe(request.http_request.method, http.status_code, http.headers)

    return BudgetPolicy


def _same_host_redirect_policy() -> type:
    from azure.core.pipeline.policies import RedirectPolicy

    class SameHostRedirectPolicy(RedirectPolicy):
        """A redirect is followed only on the endpoint's own host: a body from elsewhere must
        never be taken for the resource (and our token must never go there)."""

        def __init__(self, endpoint: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            parts = urlsplit(endpoint)
            self._origin = (parts.scheme.lower(), parts.netloc.lower())

        def get_redirect_location(self, response: Any) -> Any:
            location = super().get_redirect_location(response)
            if location:
                from urllib.parse import urljoin

                target = urlsplit(urljoin(response.http_request.url, location))
                if (target.scheme.lower(), target.netloc.lower()) != self._origin:
                    raise RedirectRefused(f"ARM answered with a redirect to another host ({target.netloc}); "
                                          "not followed")
            return location

    return SameHostRedirectPolicy


class ArmClient:
    """One subscription behind one ARM endpoint. Not for concurrent writes from several threads:
    ``put`` tells its own retried requests apart by the request counts.

    ``credential`` defaults to :func:`exfilguard.adapters.endpoint.make_credential` for the endpoint
    (none at all for loopback http). ``polling_interval`` overrides the server's Retry-After
    between LRO polls (tests use a few milliseconds); by default ARM's Retry-After is honoured.
    """

    def __init__(self, subscription_id: str, endpoint: str | None = None, credential: Any = ..., *,
                 retry_total: int = 6, backoff_factor: float = 0.4, backoff_max: float = 20,
                 polling_interval: float | None = None, lro_timeout: float = DEFAULT_LRO_TIMEOUT,
                 connection_timeout: float = 20.0, read_timeout: float = 120.0, budget: Any = None,
                 deadline_s: float | None = None, max_retry_after: float | None = None) -> None:
        if not subscription_id or "/" in subscription_id:
            raise ValueError(f"subscription ID {subscription_id!r} is not a subscription ID")
        self.subscription_id = subscription_id.strip()
        self.endpoint = endpoint_mod.resolve_endpoint(endpoint, environ={}) if endpoint else \
            endpoint_mod.resolve_endpoint(None)
        self.loopback = endpoint_mod.is_loopback_http(self.endpoint)
        if credential is ...:
            credential = endpoint_mod.make_credential(self.endpoint)
        if credential is None and not self.loopback:
            raise ValueError(f"a credential is needed for {self.endpoint}")
        self._credential = credential
        self.retry_total = retry_total
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.polling_interval = polling_interval
        self.lro_timeout = lro_timeout
        # Per-request limits: azure-core's default is 300 s, longer than an HTTP trigger may take.
        self.connection_timeout = connection_timeout
        self.read_timeout = read_timeout
        from exfilguard.adapters.budget import Deadline

        # The instance's ARM budget (None: unpaced, the CLI) and this invocation's deadline.
        self.budget = budget
        self.deadline = Deadline(deadline_s) if deadline_s is not None else None
        self.max_retry_after = max_retry_after
        self.counts: dict[str, int] = {}
        self.last_status: int | None = None
        """HTTP status of the last write's first answer (200/201/202), for the audit log."""
        self._lock = threading.Lock()
        self._network: Any = None
        self._ml: Any = None
        self._pipeline: Any = None
        self._sleep: Callable[[float], None] = time.sleep

    # ------------------------------------------------------------------ SDK clients
    def _client_kwargs(self) -> dict[str, Any]:
        _, counter_cls = _policy_classes()
        retry_cls, budget_cls, redirect_cls = _guard_policy_classes()
        kwargs: dict[str, Any] = {
            "base_url": self.endpoint,
            "credential_scopes": endpoint_mod.credential_scopes(self.endpoint),
            "retry_policy": retry_cls(retry_total=self.retry_total, retry_connect=self.retry_total,
                                      retry_read=self.retry_total, retry_status=self.retry_total,
                                      retry_backoff_factor=self.backoff_factor,
                                      retry_backoff_max=self.backoff_max, deadline=self.deadline,
                                      max_retry_after=self.max_retry_after),
            "redirect_policy": redirect_cls(self.endpoint),
            "per_retry_policies": [counter_cls(self.counts, self._lock), budget_cls(self.budget, self.deadline)],
            "connection_timeout": self.connection_timeout,
            "read_timeout": self.read_timeout,
        }
        if self.loopback:
            from azure.core.pipeline.policies import SansIOHTTPPolicy

            # BearerTokenCredentialPolicy refuses http://; a no-op policy sends no token at all.
            kwargs["authentication_policy"] = SansIOHTTPPolicy()
        return kwargs

    @property
    def pipeline(self) -> Any:
        """The one raw ARM pipeline every request travels (retry, redirect, counting, budget and
        auth policies as the SDK clients would have them), built from azure-core and
        azure-mgmt-core alone: the management SDK packages, over half a second to import, are
        never needed for the JSON this module sends and receives."""
        with self._lock:
            if self._pipeline is None:
                from azure.core.pipeline.policies import (
                    ContentDecodePolicy,
                    HeadersPolicy,
                    RequestIdPolicy,
                    UserAgentPolicy,
                )
                from azure.core.pipeline.transport import RequestsTransport
                from azure.mgmt.core import ARMPipelineClient

                kw = self._client_kwargs()
                auth: Any = kw.get("authentication_policy")  # loopback: a no-op, no token at all
                if auth is None:
                    from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

                    auth = ARMChallengeAuthenticationPolicy(self._credential, *kw["credential_scopes"])
                policies = [RequestIdPolicy(), HeadersPolicy(), UserAgentPolicy("exfilguard"), ContentDecodePolicy(),
                            kw["redirect_policy"], kw["retry_policy"], *kw["per_retry_policies"], auth]
                transport = RequestsTransport(connection_timeout=self.connection_timeout,
                                              read_timeout=self.read_timeout)
                self._pipeline = ARMPipelineClient(base_url=self.endpoint, policies=policies, transport=transport)
            return self._pipeline

    @property
    def network(self) -> Any:
        """``NetworkManagementClient``, built on first use (once, whichever thread asks first)."""
        with self._lock:
            if self._network is None:
                from azure.mgmt.network import NetworkManagementClient

                cred = self._credential if self._credential is not None else _NoCredential()
                self._network = NetworkManagementClient(cred, self.subscription_id, **self._client_kwargs())
            return self._network

    @property
    def ml(self) -> Any:
        """``MachineLearningServicesMgmtClient`` (its pipeline only), built on first use."""
        with self._lock:
            if self._ml is None:
                from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

                cred = self._credential if self._credential is not None else _NoCredential()
                self._ml = MachineLearningServicesMgmtClient(cred, self.subscription_id, **self._client_kwargs())
            return self._ml

    def close(self) -> None:
        for client in (self._network, self._ml, self._pipeline):
            if client is not None:
                client.close()
        self._network = self._ml = self._pipeline = None

    def __enter__(self) -> ArmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _count(self, kind: str) -> int:
        with self._lock:
            return self.counts.get(kind, 0)

    def url(self, resource_id: str, suffix: str = "") -> str:
        """The absolute URL of a resource (or one of its actions) at this endpoint."""
        return f"{self.endpoint}{quote(resource_id.strip().rstrip('/'), safe=_SAFE)}{suffix}"

    @staticmethod
    def api_version(type_key: str) -> str:
        version = types.api_version(type_key)
        if version is None:
            raise ArmError(f"type {type_key} is not one ExfilGuard reads", code="UnsupportedType")
        return version

    def _pipeline_for(self, type_key: str, *, write: bool = False) -> Any:
        """The pipeline a raw request of this type travels through: Machine Learning's SDK
        client's for writes of its types, the shared ARM pipeline for everything else (reads
        need only the policies, which both hold)."""
        self.api_version(type_key)
        ml = write and type_key.startswith(types.WORKSPACE.namespace.lower() + "/")
        return self.ml._client if ml else self.pipeline

    def _send(self, pipeline: Any, method: str, url: str, resource_id: str, *, api_version: str | None = None,
              body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        all_headers = {"Accept": "application/json", **(headers or {})}
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        params = {"api-version": api_version} if api_version else None
        request = HttpRequest(method, url, params=params, headers=all_headers, content=body)
        try:
            response = pipeline.send_request(request)
            response.read()
        except (AzureError, *_guard_errors()) as exc:  # type: ignore[misc]  # a tuple built at run time
            raise self._no_answer(exc, resource_id) from exc
        return response

    def _no_answer(self, exc: Exception, resource_id: str, replayed: bool = False) -> ArmError:
        """An exception that came instead of an HTTP answer: no token, or no connection."""
        from azure.core.exceptions import ClientAuthenticationError

        from exfilguard.adapters.budget import BudgetExceeded

        text = getattr(exc, "message", None) or str(exc)
        if isinstance(exc, BudgetExceeded):
            return ArmError(f"{resource_id}: gave up: {text}", code="DeadlineExceeded", resource_id=resource_id,
                            replayed=replayed, retryable=False)
        if isinstance(exc, RedirectRefused):
            return ArmError(f"{resource_id}: {text}", code="RedirectRefused", resource_id=resource_id,
                            retryable=False)
        if isinstance(exc, ClientAuthenticationError):
            # No token: the identity endpoint or Entra ID was unreachable, slow or throttled,
            # which passes. Only ARM itself answering 401/403 is a verdict on the identity, so
            # this is transient: the event is raised to Event Grid, which redelivers it.
            return ArmError(f"{resource_id}: could not get a token for {self.endpoint}: {text}",
                            code="AuthenticationFailed", resource_id=resource_id, retryable=True)
        return ArmError(f"{resource_id}: no answer from {self.endpoint} after {self.retry_total} retries: {text}",
                        code="ConnectionError", resource_id=resource_id, replayed=replayed)

    def _check(self, response: Any, resource_id: str, ok: Iterable[int], replayed: bool = False) -> None:
        if response.status_code in ok:
            return
        try:
            payload = response.json()
        except ValueError:
            payload = None
        raise _error_from_body(response.status_code, payload, response.text()[:300] or response.reason or "",
                               resource_id, replayed)

    def _from_sdk_error(self, exc: Exception, resource_id: str, replayed: bool = False) -> ArmError:
        from azure.core.exceptions import HttpResponseError

        if isinstance(exc, HttpResponseError) and exc.response is not None:
            err = exc.error
            code = getattr(err, "code", None)
            text = getattr(err, "message", None) or exc.message
            return _error(exc.status_code, code, text, resource_id, replayed)
        return self._no_answer(exc, resource_id, replayed)

    def _same_origin(self, link: str, resource_id: str) -> str:
        """A nextLink must stay on the endpoint: following one elsewhere would hand our
        token to whoever wrote the page."""
        want, got = urlsplit(self.endpoint), urlsplit(link)
        if (got.scheme.lower(), (got.netloc or "").lower()) != (want.scheme.lower(), want.netloc.lower()):
            raise ArmError(f"{resource_id}: ARM returned a nextLink to another host ({got.netloc}); not followed",
                           code="UnexpectedNextLink", resource_id=resource_id)
        return link

    def _pages(self, type_key: str, collection_id: str) -> Iterator[dict]:
        """Every item of an ARM collection, following nextLink through the SDK pipeline."""
        pipeline = self._pipeline_for(type_key)
        url: str | None = self.url(collection_id)
        api: str | None = self.api_version(type_key)
        while url:
            response = self._send(pipeline, "GET", url, collection_id, api_version=api)
            self._check(response, collection_id, (200,))
            page = response.json()
            items = page.get("value") if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise ArmError(f"{collection_id}: a list page without a 'value' array", code="BadListPage",
                               resource_id=collection_id)
            yield from (i for i in items if isinstance(i, dict))
            link = page.get("nextLink")
            url = self._same_origin(link, collection_id) if isinstance(link, str) and link else None
            api = None  # nextLink carries its own api-version and skip token

    # ------------------------------------------------------------------ reads
    def get(self, resource_id: str) -> dict | None:
        """The resource's ARM JSON as ARM sent it; None when it does not exist (404)."""
        rid = ids.parse(resource_id)
        tkey = ids.type_key(rid.type)
        op_name = _network_operations(tkey)
        if op_name is not None:
            from azure.core.exceptions import AzureError, ResourceNotFoundError

            operations = getattr(self.network, op_name)
            try:
                return operations.get(rid.resource_group, *rid.names, api_version=NETWORK_API_VERSION,
                                      cls=_raw_json)
            except ResourceNotFoundError:
                return None
            except _guard_errors() as exc:
                raise self._no_answer(exc, resource_id) from exc
            except AzureError as exc:
                raise self._from_sdk_error(exc, resource_id) from exc
        response = self._send(self._pipeline_for(tkey), "GET", self.url(resource_id), resource_id,
                              api_version=self.api_version(tkey))
        if response.status_code == 404:
            return None
        self._check(response, resource_id, (200,))
        return response.json()

    def list_type(self, resource_type: str) -> Iterator[dict]:
        """Every resource of a top-level type in the subscription, page by page."""
        tkey = ids.type_key(resource_type)
        if tkey.count("/") != 1:
            raise ValueError(f"{resource_type} is not a top-level type; use list_children")
        namespace, type_name = resource_type.strip().split("/")
        yield from self._pages(tkey, f"/subscriptions/{self.subscription_id}/providers/{namespace}/{type_name}")

    def list_children(self, parent_id: str, child_type: str) -> Iterator[dict]:
        """Every child of one resource, e.g. ``(workspace, "computes")`` or ``(env, "versions")``."""
        parent = ids.parse(parent_id)
        segment = child_type.strip().rstrip("/").rsplit("/", 1)[-1]
        tkey = ids.type_key(f"{parent.type}/{segment}")
        yield from self._pages(tkey, f"{str(parent_id).strip().rstrip('/')}/{segment}")

    def read_subscription(self, progress: Callable[[str, int], None] | None = None,
                          on_error: Callable[[ArmError], None] | None = None) -> list[dict]:
        """Every resource the baseline reads, every environment version included: the sweep's
        reader (:func:`exfilguard.adapters.sweepread.read`) run one list at a time."""
        from exfilguard.adapters import sweepread

        return sweepread.read(self, progress=progress, on_error=on_error).bodies

    # ------------------------------------------------------------------ writes
    def put(self, resource_id: str, body: dict, etag: str | None) -> dict:
        """PUT ``body`` as is (If-Match ``etag`` when given), wait for the LRO, return the body.

        The answer is the PUT response (the resource as written, with its new etag); once the
        async operation has succeeded only its provisioningState is stale, so that is set from
        the operation instead of paying a GET for it.
        """
        rid = ids.parse(resource_id)
        tkey = ids.type_key(rid.type)
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = {"If-Match": etag} if etag else {}
        before = self._count("PUT")
        op_name = _network_operations(tkey)
        if op_name is not None:
            from azure.core.exceptions import AzureError

            operations = getattr(self.network, op_name)
            try:
                poller = operations.begin_create_or_update(
                    rid.resource_group, *rid.names, io.BytesIO(data), content_type="application/json",
                    headers=headers, api_version=NETWORK_API_VERSION, polling=False, cls=_pipeline_response)
                response = poller.result().http_response
            except _guard_errors() as exc:
                raise self._no_answer(exc, resource_id, self._count("PUT") - before > 1) from exc
            except AzureError as exc:
                raise self._from_sdk_error(exc, resource_id, self._count("PUT") - before > 1) from exc
            pipeline = self.network._client
        else:
            pipeline = self._pipeline_for(tkey, write=True)
            response = self._send(pipeline, "PUT", self.url(resource_id), resource_id,
                                  api_version=self.api_version(tkey), body=data, headers=headers)
            self._check(response, resource_id, (200, 201, 202), self._count("PUT") - before > 1)
        self.last_status = response.status_code
        written = response.json() if response.text() else dict(body)
        state = self._await(pipeline, response, resource_id)
        props = written.get("properties") if isinstance(written, dict) else None
        if isinstance(props, dict) and "provisioningState" in props:
            props["provisioningState"] = state
        return written

    def patch(self, resource_id: str, document: dict, etag: str | None = None) -> dict:
        """JSON merge patch: the narrowest write there is, for resources without an etag and for
        types whose provider updates only through PATCH (AML computes)."""
        rid = ids.parse(resource_id)
        tkey = ids.type_key(rid.type)
        pipeline = self._pipeline_for(tkey, write=True)
        headers = {"If-Match": etag} if etag else {}
        before = self._count("PATCH")
        response = self._send(pipeline, "PATCH", self.url(resource_id), resource_id,
                              api_version=self.api_version(tkey),
                              body=json.dumps(document, separators=(",", ":")).encode(), headers=headers)
        self._check(response, resource_id, (200, 201, 202), self._count("PATCH") - before > 1)
        self.last_status = response.status_code
        written = response.json() if response.text() else {}
        self._await(pipeline, response, resource_id)
        return written

    def post_action(self, resource_id: str, action: str) -> None:
        """POST ``{resource}/{action}`` (e.g. a compute's ``stop``) and wait for it to finish."""
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", action):
            raise ValueError(f"{action!r} is not an ARM action name")
        rid = ids.parse(resource_id)
        tkey = ids.type_key(rid.type)
        pipeline = self._pipeline_for(tkey, write=True)
        response = self._send(pipeline, "POST", self.url(resource_id, f"/{action}"), resource_id,
                              api_version=self.api_version(tkey))
        self._check(response, resource_id, (200, 202, 204))
        self.last_status = response.status_code
        self._await(pipeline, response, resource_id)

    def describe(self, method: str, resource_id: str, body: dict | None = None, etag: str | None = None,
                 action: str | None = None) -> dict:
        """The request a write would send, for --dry-run and the audit log; nothing is sent."""
        tkey = ids.type_key(ids.parse(resource_id).type)
        url = self.url(resource_id, f"/{action}" if action else "") + f"?api-version={self.api_version(tkey)}"
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if etag:
            headers["If-Match"] = etag
        return {"method": method, "url": url, "headers": headers, "body": body}

    # ------------------------------------------------------------------ long-running operations
    def _poll_delay(self, response: Any) -> float:
        if self.polling_interval is not None:
            return max(0.0, self.polling_interval)
        header = response.headers.get("Retry-After")
        if header:
            try:
                return max(MIN_POLL_SECONDS, float(header))
            except ValueError:
                pass  # an HTTP date: fall back to the default below
        return DEFAULT_POLL_SECONDS

    def _await(self, pipeline: Any, response: Any, resource_id: str) -> str:
        """Follow Azure-AsyncOperation (or Location) until the operation ends; its final status."""
        monitor = response.headers.get("Azure-AsyncOperation")
        location = response.headers.get("Location") if response.status_code == 202 else None
        if not monitor and not location:
            return "Succeeded"
        url = self._same_origin(str(monitor or location), resource_id)
        deadline = time.monotonic() + self.lro_timeout
        current = response
        while True:
            if time.monotonic() > deadline:
                raise ArmError(f"{resource_id}: the operation did not finish within {self.lro_timeout:g}s",
                               code="OperationTimeout", resource_id=resource_id)
            delay = self._poll_delay(current)
            left = self.deadline.remaining() if self.deadline is not None else None
            if left is not None and delay + 1.0 >= left:
                # The invocation must answer now: ARM accepted the write and is still at it.
                raise ArmError(f"{resource_id}: ARM accepted the write; its operation was still running when the "
                               "invocation's time budget ran out", status=202, code="OperationPending",
                               resource_id=resource_id, retryable=False)
            self._sleep(delay)
            current = self._send(pipeline, "GET", url, resource_id)
            if monitor:
                self._check(current, resource_id, (200,))
                status_body = current.json() if current.text() else {}
                status = str(status_body.get("status", "")) if isinstance(status_body, dict) else ""
                if status.lower() == "succeeded":
                    return "Succeeded"
                if status.lower() in ("failed", "canceled", "cancelled"):
                    error = status_body.get("error") if isinstance(status_body, dict) else None
                    err: dict[str, Any] = error if isinstance(error, dict) else {}
                    raise ArmError(f"{resource_id}: the operation ended {status}: {err.get('code') or ''} "
                                   f"{err.get('message') or ''}".rstrip(), code=err.get("code") or status,
                                   resource_id=resource_id, retryable=False)
            else:
                if current.status_code == 202:
                    continue
                self._check(current, resource_id, (200, 201, 204))
                return "Succeeded"
