"""Email through an SMTP relay, for organisations that route mail through their own.

STARTTLS is on by default and certificate checks are never relaxed; port 465 means
implicit TLS. Credentials are only ever sent over TLS (settings refuses the alternative).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from typing import Any

from exfilguard.alerts.delivery import DeliveryError
from exfilguard.alerts.mail import build_mime

log = logging.getLogger("exfilguard.alerts.smtp")


class SmtpSender:
    channel = "email"

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        sender: str,
        username: str = "",
        password: str = "",
        starttls: bool = True,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self._username = username
        self._password = password
        self.starttls = starttls
        self.timeout = timeout
        self._ssl_context = ssl_context

    def __repr__(self) -> str:
        return f"SmtpSender(host={self.host!r}, port={self.port}, starttls={self.starttls})"

    def _connect(self) -> smtplib.SMTP:
        context = self._ssl_context or ssl.create_default_context()
        if self.port == 465:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        client.ehlo()
        if self.starttls:
            client.starttls(context=context)
            client.ehlo()
        return client

    def send(self, payload: dict[str, Any]) -> int:
        """Send one message; return 1 (SMTP relays queue and retry themselves)."""
        message = build_mime(payload, self.sender)
        try:
            with self._connect() as client:
                if self._username:
                    client.login(self._username, self._password)
                refused = client.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP login to {self.host}:{self.port} refused ({exc.smtp_code})",
                                retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            text = str(exc).replace(self._password, "***") if self._password else str(exc)
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {text}") from None
        if refused:
            # Some recipients took it: resending would duplicate it for them, so only say so.
            log.warning("SMTP %s:%s refused some recipients: %s", self.host, self.port, ", ".join(sorted(refused)))
        return 1
