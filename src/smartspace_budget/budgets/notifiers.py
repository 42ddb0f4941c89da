"""Alert handlers that deliver :class:`SpendingAlert` s: signed webhook, Slack, email, Apprise.

Each notifier is an async callable, so it registers directly:
``monitor.register_alert_handler(WebhookNotifier(url, secret=...))``. Called on its own, it
retries transient failures (connection errors, timeouts, HTTP 429 and 5xx) with exponential
backoff and raises :class:`NotificationError` when it gives up. A monitor instead calls
``deliver_once`` (one attempt) under its own retry policy (``budgets/delivery.py``), so
retries never nest; ``NotificationError.retryable`` tells it whether trying again can help.

**Webhook signatures.** The body is the alert as exact JSON. The request carries
``X-Smartspace-Timestamp`` (Unix seconds) and
``X-Smartspace-Signature: sha256=<hex>``, the HMAC-SHA256 under the shared secret of
``<timestamp>.<body>``. A receiver recomputes it over the raw body (:func:`verify_signature`
does) and refuses old timestamps, so a captured request cannot be replayed later.
``X-Smartspace-Alert-Id`` lets it drop duplicates from retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import smtplib
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from email.message import EmailMessage
from typing import Any, ClassVar

import httpx

from smartspace_budget.budgets._format import usd
from smartspace_budget.errors import InvalidInputError, SmartspaceBudgetError
from smartspace_budget.models import AlertLevel, SpendingAlert, dumps

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AppriseNotifier",
    "EmailNotifier",
    "NotificationError",
    "SlackNotifier",
    "WebhookNotifier",
    "sign_payload",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Smartspace-Signature"
TIMESTAMP_HEADER = "X-Smartspace-Timestamp"
ALERT_ID_HEADER = "X-Smartspace-Alert-Id"


class NotificationError(SmartspaceBudgetError):
    """An alert could not be delivered (after the notifier's retries), or cannot be at all.

    ``retryable`` is false when sending it again will not help (the receiver refused it).
    """

    status_code = 502

    def __init__(self, detail: str, *, retryable: bool = True, **context: Any) -> None:
        super().__init__(detail, **context)
        self.retryable = retryable


def sign_payload(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp``: ``sha256=<hex>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str | bytes,
    body: bytes,
    timestamp: str | int,
    signature: str,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` is ours for ``body`` and ``timestamp`` is within ``tolerance`` s.

    For receivers: pass the raw request body, not a re-serialized one.
    """
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        return False
    return hmac.compare_digest(sign_payload(secret, body, stamp), signature)


def _check_retry_args(retries: int, backoff: float, timeout: float) -> None:
    if retries < 0 or backoff < 0 or timeout <= 0:
        raise InvalidInputError("retries and backoff must be >= 0 and timeout > 0")


class _HttpNotifier:
    """POSTs with retries; subclasses say what body and headers to send."""

    kind: ClassVar[str] = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInputError(f"{self.kind} URL must be http(s), got {url[:60]!r}")
        _check_retry_args(retries, backoff, timeout)
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._client = client

    def describe(self) -> str:
        """The notifier in logs: its kind and host, never the URL's secret path."""
        return f"{self.kind} {_redact(self.url)}"

    def _request(self, alert: SpendingAlert) -> tuple[bytes, Callable[[], Mapping[str, str]]]:
        raise NotImplementedError

    async def __call__(self, alert: SpendingAlert) -> None:
        """Deliver ``alert``, retrying transient failures (``retries``, ``backoff``)."""
        body, headers = self._request(alert)
        async with self._session() as client:
            for attempt in range(self.retries + 1):
                if attempt:
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
                try:
                    await self._attempt(client, body, headers)
                    return
                except NotificationError as exc:
                    if not exc.retryable or attempt == self.retries:
                        raise

    async def deliver_once(self, alert: SpendingAlert) -> None:
        """One attempt to deliver ``alert`` (a monitor's retry policy decides the rest)."""
        body, headers = self._request(alert)
        async with self._session() as client:
            await self._attempt(client, body, headers)

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._client is not None:
            yield self._client
            return
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            yield client

    async def _attempt(
        self, client: httpx.AsyncClient, body: bytes, headers: Callable[[], Mapping[str, str]]
    ) -> None:
        where = _redact(self.url)
        try:
            response = await client.post(
                self.url, content=body, headers=dict(headers()), timeout=self.timeout
            )
        except httpx.TransportError as exc:
            raise NotificationError(
                f"{self.kind} delivery to {where} failed: {type(exc).__name__}: {exc}",
                url=where,
            ) from None
        if response.is_success:
            return
        # A refusal (4xx but 429) does not get better by sending the same request again.
        retryable = response.status_code == 429 or response.status_code >= 500
        raise NotificationError(
            f"{self.kind} delivery to {where} failed: HTTP {response.status_code}",
            retryable=retryable,
            url=where,
        )


def _redact(url: str) -> str:
    """Webhook URLs embed their secret in the path (Slack's do): show only scheme and host."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}{':' + str(parsed.port) if parsed.port else ''}/..."


class WebhookNotifier(_HttpNotifier):
    """POST each alert as JSON to ``url``, signed with ``secret`` (see the module docstring).

    Without a secret the request is sent unsigned. ``headers`` are added to every request.
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(url, timeout=timeout, retries=retries, backoff=backoff, client=client)
        if secret is not None and not secret:
            raise InvalidInputError("a webhook secret must not be empty")
        self._secret = secret
        self._headers = dict(headers or {})

    def _request(self, alert: SpendingAlert) -> tuple[bytes, Callable[[], Mapping[str, str]]]:
        body = alert.to_json().encode()

        def headers() -> dict[str, str]:
            stamp = int(time.time())
            result = {
                **self._headers,
                "Content-Type": "application/json",
                "User-Agent": "smartspace-budget",
                ALERT_ID_HEADER: alert.alert_id,
                TIMESTAMP_HEADER: str(stamp),
            }
            if self._secret is not None:
                result[SIGNATURE_HEADER] = sign_payload(self._secret, body, stamp)
            return result

        return body, headers


_SLACK_EMOJI = {
    AlertLevel.INFO: ":information_source:",
    AlertLevel.WARNING: ":warning:",
    AlertLevel.CRITICAL: ":rotating_light:",
    AlertLevel.EMERGENCY: ":sos:",
}


class SlackNotifier(_HttpNotifier):
    """Post each alert to a Slack incoming webhook (``https://hooks.slack.com/services/...``)."""

    kind = "Slack"

    def slack_payload(self, alert: SpendingAlert) -> dict[str, Any]:
        """The message: a plain ``text`` for notifications and blocks for the channel."""
        emoji = _SLACK_EMOJI[alert.level]
        headline = f"{emoji} [{alert.level.value.upper()}] {alert.title}"
        account = f"{alert.user_id} / {alert.project_id}"
        return {
            "text": f"{headline}: {alert.message}",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": alert.message}},
                {
                    "type": "context",
                    "elements": [
                        {
                            "type": "mrkdwn",
                            "text": f"{account} · {alert.alert_type.value} · "
                            f"{alert.created_at:%Y-%m-%d %H:%M %Z} · id {alert.alert_id}",
                        }
                    ],
                },
            ],
        }

    def _request(self, alert: SpendingAlert) -> tuple[bytes, Callable[[], Mapping[str, str]]]:
        body = dumps(self.slack_payload(alert)).encode()
        return body, lambda: {"Content-Type": "application/json"}


class EmailNotifier:
    """Send each alert as a plain-text email over SMTP.

    ``tls="starttls"`` upgrades a plain connection, ``"ssl"`` connects with TLS from the
    start (port 465), ``None`` sends in clear (a local relay). Login happens when
    ``username`` is given. The blocking smtplib session runs in a worker thread.
    """

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        sender: str,
        recipients: Sequence[str],
        username: str | None = None,
        password: str | None = None,
        tls: str | None = "starttls",
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 1.0,
        subject_prefix: str = "[smartspace-budget]",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not recipients:
            raise InvalidInputError("an email notifier needs at least one recipient")
        if tls not in (None, "starttls", "ssl"):
            raise InvalidInputError(f"tls must be 'starttls', 'ssl' or None, got {tls!r}")
        _check_retry_args(retries, backoff, timeout)
        self.host, self.port = host, port
        self.sender, self.recipients = sender, list(recipients)
        self._username, self._password = username, password
        self.tls, self.timeout = tls, timeout
        self.retries, self.backoff = retries, backoff
        self.subject_prefix = subject_prefix
        self._ssl_context = ssl_context

    def message(self, alert: SpendingAlert) -> EmailMessage:
        """The email for ``alert``."""
        msg = EmailMessage()
        msg["Subject"] = f"{self.subject_prefix} {alert.level.value.upper()}: {alert.title}"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["X-Smartspace-Alert-Id"] = alert.alert_id
        lines = [
            alert.message,
            "",
            f"Account:   {alert.user_id} / {alert.project_id}",
            f"Type:      {alert.alert_type.value}",
            f"Level:     {alert.level.value}",
            f"Value:     {usd(alert.current_value)}",
        ]
        if alert.threshold_value is not None:
            lines.append(f"Threshold: {usd(alert.threshold_value)}")
        lines += [f"Raised at: {alert.created_at.isoformat()}", f"Alert id:  {alert.alert_id}"]
        msg.set_content("\n".join(lines) + "\n")
        return msg

    def _send(self, msg: EmailMessage) -> None:
        context = self._ssl_context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.tls == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.tls == "starttls":
                smtp.starttls(context=context)
            if self._username is not None:
                smtp.login(self._username, self._password or "")
            smtp.send_message(msg)

    def describe(self) -> str:
        """The notifier in logs."""
        return f"email via {self.host}:{self.port}"

    async def __call__(self, alert: SpendingAlert) -> None:
        """Send ``alert``, retrying transient failures (``retries``, ``backoff``)."""
        msg = self.message(alert)
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                await self._attempt(msg)
                return
            except NotificationError as exc:
                if not exc.retryable or attempt == self.retries:
                    raise

    async def deliver_once(self, alert: SpendingAlert) -> None:
        """One attempt to send ``alert`` (a monitor's retry policy decides the rest)."""
        await self._attempt(self.message(alert))

    async def _attempt(self, msg: EmailMessage) -> None:
        where = f"email to {', '.join(self.recipients)} via {self.host}:{self.port}"
        try:
            await asyncio.to_thread(self._send, msg)
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused) as exc:
            # Wrong credentials or addresses do not get better by retrying.
            raise NotificationError(
                f"{where} failed: {type(exc).__name__}: {exc}", retryable=False
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise NotificationError(f"{where} failed: {type(exc).__name__}: {exc}") from None


class AppriseNotifier:
    """Deliver alerts to any service Apprise knows (``pip install 'smartspace-budget[apprise]'``).

    ``urls`` are Apprise URLs (``tgram://...``, ``discord://...``, ``mailto://...``, ...).
    Raises :class:`NotificationError` at construction when Apprise is not installed or no
    URL is valid.
    """

    _TYPES: ClassVar[dict[AlertLevel, str]] = {
        AlertLevel.INFO: "info",
        AlertLevel.WARNING: "warning",
        AlertLevel.CRITICAL: "failure",
        AlertLevel.EMERGENCY: "failure",
    }

    def __init__(self, urls: str | Sequence[str], *, retries: int = 2, backoff: float = 1.0):
        try:
            import apprise
        except ImportError:
            raise NotificationError(
                "AppriseNotifier needs the optional 'apprise' package: "
                "pip install 'smartspace-budget[apprise]'"
            ) from None
        _check_retry_args(retries, backoff, 1.0)
        self._apprise = apprise.Apprise()
        for url in [urls] if isinstance(urls, str) else list(urls):
            if not self._apprise.add(url):
                raise NotificationError(
                    f"Apprise does not accept the URL {url.split(':')[0]}://..."
                )
        if len(self._apprise) == 0:
            raise NotificationError("AppriseNotifier needs at least one URL")
        self.retries, self.backoff = retries, backoff

    def describe(self) -> str:
        """The notifier in logs."""
        return "Apprise"

    async def __call__(self, alert: SpendingAlert) -> None:
        """Deliver ``alert``, retrying (``retries``, ``backoff``)."""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                await self.deliver_once(alert)
                return
            except NotificationError:
                if attempt == self.retries:
                    raise

    async def deliver_once(self, alert: SpendingAlert) -> None:
        """One attempt to deliver ``alert`` (a monitor's retry policy decides the rest)."""
        title = f"[{alert.level.value.upper()}] {alert.title}"
        body = f"{alert.message}\n({alert.user_id} / {alert.project_id}, id {alert.alert_id})"
        delivered = await self._apprise.async_notify(
            body=body, title=title, notify_type=self._TYPES[alert.level]
        )
        if not delivered:
            raise NotificationError(f"Apprise could not deliver alert {alert.alert_id}")
