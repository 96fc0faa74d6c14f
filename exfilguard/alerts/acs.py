"""Email through Azure Communication Services, authenticated by the Function App's managed
identity (no connection string to keep in a vault).

The SDK is imported inside :meth:`AcsEmailSender.send`, not at module import: it pulls in
most of azure-core and the Function app's cold start pays for every import.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from exfilguard.alerts.delivery import DeliveryError

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def acs_message(payload: dict[str, Any], sender: str) -> dict[str, Any]:
    """The ACS ``emails:send`` request body for one email payload."""
    return {
        "senderAddress": sender,
        "recipients": {"to": [{"address": a} for a in payload["to"]]},
        "content": {"subject": payload["subject"], "plainText": payload["text"], "html": payload["html"]},
        "headers": dict(payload.get("headers", {})),
        "userEngagementTrackingDisabled": True,
    }


class AcsEmailSender:
    channel = "email"

    def __init__(self, endpoint: str, *, sender: str, credential: Any = None,
                 poll_interval: float = 2.0, timeout: float = 120.0) -> None:
        self.endpoint = endpoint
        self.sender = sender
        self._credential = credential
        self.poll_interval = poll_interval
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"AcsEmailSender(endpoint={self.endpoint!r})"

    def _client(self) -> Any:
        from azure.communication.email import EmailClient

        credential = self._credential
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
            self._credential = credential
        return EmailClient(self.endpoint, credential)

    def send(self, payload: dict[str, Any]) -> int:
        """Queue the email with ACS and wait until ACS reports it sent. Returns 1.

        Waiting (bounded by ``timeout``) matters: ACS accepts with 202 and may still fail the
        message; only a final ``Succeeded`` counts as delivered."""
        from azure.core.exceptions import AzureError

        kwargs: dict[str, Any] = {"polling_interval": self.poll_interval}
        try:
            client = self._client()
            parts = urlsplit(self.endpoint)
            if (parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK
                    and hasattr(self._credential, "get_token")):
                # The bearer policy refuses plain http; a loopback stand-in (tests) is the only
                # http endpoint settings allow. (Key credentials sign instead, and the option
                # would reach the transport, which rejects it.)
                kwargs["enforce_https"] = False
            poller = client.begin_send(acs_message(payload, self.sender), **kwargs)
            result = poller.result(timeout=self.timeout)
        except AzureError as exc:
            status = getattr(exc, "status_code", None)
            retryable = status is None or status == 429 or status >= 500
            raise DeliveryError(f"ACS email: {type(exc).__name__}: {exc.message if hasattr(exc, 'message') else exc}",
                                status=status, retryable=retryable) from None
        if not poller.done():
            raise DeliveryError(f"ACS email: not finished after {self.timeout:.0f}s")
        state = (result or {}).get("status", "")
        if str(state).lower() != "succeeded":
            error = (result or {}).get("error") or {}
            raise DeliveryError(f"ACS email ended {state or 'without a status'}: "
                                f"{error.get('code', '')} {error.get('message', '')}".strip())
        return 1
