"""Notifiers against real local receivers: an HTTP server and an SMTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from typer.testing import CliRunner

from smartspace_budget.backend import default_backend
from smartspace_budget.budgets import (
    AlertLevel,
    AlertType,
    AppriseNotifier,
    EmailNotifier,
    NotificationError,
    SlackNotifier,
    SpendingAlert,
    WebhookNotifier,
    notifier_from_url,
    notifiers_from_urls,
    sign_payload,
    verify_signature,
)
from smartspace_budget.cli import app
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import BudgetPolicy, UsageEvent

SECRET = "s3cret-for-tests"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records each POST; answers with the queued status codes, then 200."""

    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            state.requests.append(Received(self.path, dict(self.headers.items()), body))
            if state.delay:
                time.sleep(state.delay)
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/B000/XXXX"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def alert() -> SpendingAlert:
    return SpendingAlert(
        user_id="user_001",
        project_id="proj_001",
        alert_type=AlertType.DAILY_LIMIT,
        level=AlertLevel.CRITICAL,
        title="Daily spending: daily limit reached (100%)",
        message="Spent $10.000000001 today of the $10.00 daily limit",
        current_value=Decimal("10.000000001"),
        threshold_value=Decimal("10"),
        metadata={"percentage": Decimal(100)},
    )


# -- webhook ------------------------------------------------------------------------------


async def test_webhook_posts_the_alert_signed(receiver: Receiver, alert: SpendingAlert) -> None:
    await WebhookNotifier(receiver.url, secret=SECRET, headers={"X-Env": "test"})(alert)
    (request,) = receiver.requests
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["x-env"] == "test"
    assert headers["x-smartspace-alert-id"] == alert.alert_id
    stamp = headers["x-smartspace-timestamp"]
    signature = headers["x-smartspace-signature"]
    assert signature.startswith("sha256=")
    assert verify_signature(SECRET, request.body, stamp, signature)
    assert not verify_signature("wrong", request.body, stamp, signature)
    assert not verify_signature(SECRET, request.body + b" ", stamp, signature)
    assert not verify_signature(SECRET, request.body, stamp, signature, now=int(stamp) + 301)
    assert SpendingAlert.from_json(request.body) == alert  # amounts exact, not floats
    assert b'"current_value": 10.000000001' in request.body


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign_payload("k", b"{}", 1700000000) == f"sha256={expected}"
    assert not verify_signature("k", b"{}", "not-a-number", f"sha256={expected}")


async def test_webhook_retries_server_errors_with_backoff(
    receiver: Receiver, alert: SpendingAlert
) -> None:
    receiver.statuses = [503, 429]
    await WebhookNotifier(receiver.url, secret=SECRET, backoff=0.01)(alert)
    assert len(receiver.requests) == 3
    stamps = [r.headers["X-Smartspace-Timestamp"] for r in receiver.requests]
    for request, stamp in zip(receiver.requests, stamps, strict=True):
        assert verify_signature(
            SECRET, request.body, stamp, request.headers["X-Smartspace-Signature"]
        )


async def test_webhook_does_not_retry_a_refusal(receiver: Receiver, alert: SpendingAlert) -> None:
    receiver.statuses = [400]
    notifier = WebhookNotifier(receiver.url, backoff=0.01)
    with pytest.raises(NotificationError, match="HTTP 400"):
        await notifier(alert)
    assert len(receiver.requests) == 1
    assert "X-Smartspace-Signature" not in receiver.requests[0].headers  # no secret: unsigned


async def test_webhook_gives_up_after_retries(receiver: Receiver, alert: SpendingAlert) -> None:
    receiver.statuses = [500] * 10
    with pytest.raises(NotificationError) as caught:
        await WebhookNotifier(receiver.url, retries=2, backoff=0.01)(alert)
    assert len(receiver.requests) == 3
    assert "/hooks/" not in str(caught.value)  # the secret path is not logged


async def test_webhook_timeout_and_unreachable(receiver: Receiver, alert: SpendingAlert) -> None:
    receiver.delay = 0.5
    with pytest.raises(NotificationError, match="Timeout"):
        await WebhookNotifier(receiver.url, timeout=0.1, retries=1, backoff=0.01)(alert)
    assert len(receiver.requests) == 2
    closed = f"http://127.0.0.1:{free_port()}/hook"
    with pytest.raises(NotificationError, match="ConnectError"):
        await WebhookNotifier(closed, retries=1, backoff=0.01)(alert)


def test_webhook_arguments_are_checked() -> None:
    with pytest.raises(InvalidInputError):
        WebhookNotifier("ftp://example.invalid/hook")
    with pytest.raises(InvalidInputError):
        WebhookNotifier("http://127.0.0.1/hook", secret="")
    with pytest.raises(InvalidInputError):
        WebhookNotifier("http://127.0.0.1/hook", timeout=0)


# -- Slack --------------------------------------------------------------------------------


async def test_slack_incoming_webhook_payload(receiver: Receiver, alert: SpendingAlert) -> None:
    await SlackNotifier(receiver.url)(alert)
    (request,) = receiver.requests
    assert request.path == "/hooks/T000/B000/XXXX"
    payload = json.loads(request.body)
    assert payload["text"] == (
        ":rotating_light: [CRITICAL] Daily spending: daily limit reached (100%): "
        "Spent $10.000000001 today of the $10.00 daily limit"
    )
    sections = [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]
    assert sections[1] == alert.message
    context = payload["blocks"][-1]["elements"][0]["text"]
    assert "user_001 / proj_001" in context
    assert alert.alert_id in context


# -- email --------------------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (
                envelope.mail_from,
                list(envelope.rcpt_tos),
                message_from_bytes(envelope.content, policy=policy.default),
            )
        )
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_email_is_delivered_over_smtp(smtp: tuple[Inbox, int], alert: SpendingAlert) -> None:
    inbox, port = smtp
    notifier = EmailNotifier(
        "127.0.0.1",
        port,
        sender="budget@example.test",
        recipients=["ops@example.test", "cfo@example.test"],
        tls=None,
    )
    await notifier(alert)
    ((sender, recipients, message),) = inbox.messages
    assert sender == "budget@example.test"
    assert recipients == ["ops@example.test", "cfo@example.test"]
    # CPython may fold a long subject right after "Subject:"; readers drop that space.
    assert message["Subject"].strip() == (
        "[smartspace-budget] CRITICAL: Daily spending: daily limit reached (100%)"
    )
    assert message["X-Smartspace-Alert-Id"] == alert.alert_id
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode()
    assert "Value:     $10.000000001" in body
    assert "Threshold: $10.00" in body
    assert "Account:   user_001 / proj_001" in body


async def test_email_failure_is_a_notification_error(alert: SpendingAlert) -> None:
    notifier = EmailNotifier(
        "127.0.0.1",
        free_port(),
        sender="a@example.test",
        recipients=["b@example.test"],
        tls=None,
        timeout=1,
        retries=1,
        backoff=0.01,
    )
    with pytest.raises(NotificationError, match="ConnectionRefusedError"):
        await notifier(alert)
    with pytest.raises(InvalidInputError):
        EmailNotifier("h", sender="a@example.test", recipients=[])
    with pytest.raises(InvalidInputError):
        EmailNotifier("h", sender="a@example.test", recipients=["b@x.test"], tls="tls1.0")


# -- Apprise ------------------------------------------------------------------------------


# Apprise's e-mail plugin imports the deprecated imghdr module when the plugins load.
APPRISE_IMPORT_WARNING = pytest.mark.filterwarnings(
    "ignore:'imghdr' is deprecated:DeprecationWarning"
)


@APPRISE_IMPORT_WARNING
async def test_apprise_delivers_to_a_json_endpoint(
    receiver: Receiver, alert: SpendingAlert
) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    await AppriseNotifier(f"json://127.0.0.1:{port}/apprise")(alert)
    (request,) = receiver.requests
    assert request.path == "/apprise"
    payload = json.loads(request.body)
    assert payload["title"] == "[CRITICAL] Daily spending: daily limit reached (100%)"
    assert alert.alert_id in payload["message"]
    assert payload["type"] == "failure"


@APPRISE_IMPORT_WARNING
async def test_apprise_failure_and_missing_package(
    receiver: Receiver, alert: SpendingAlert, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.statuses = [500] * 10
    port = receiver.url.split(":")[2].split("/")[0]
    with pytest.raises(NotificationError, match="could not deliver"):
        await AppriseNotifier(f"json://127.0.0.1:{port}/x", retries=1, backoff=0.01)(alert)
    with pytest.raises(NotificationError, match="does not accept"):
        AppriseNotifier("nosuchscheme://whatever")
    monkeypatch.setitem(sys.modules, "apprise", None)
    with pytest.raises(NotificationError, match=r"pip install 'smartspace-budget\[apprise\]'"):
        AppriseNotifier("json://127.0.0.1/x")


# -- notifiers named by URL (smartspace-budget monitor --notify) ---------------------------


def test_each_url_scheme_picks_its_notifier() -> None:
    slack = notifier_from_url("https://hooks.slack.com/services/T0/B0/XX")
    assert isinstance(slack, SlackNotifier)
    assert slack.url == "https://hooks.slack.com/services/T0/B0/XX"
    local_slack = notifier_from_url("slack+http://127.0.0.1:9/hook")
    assert isinstance(local_slack, SlackNotifier)
    assert local_slack.url == "http://127.0.0.1:9/hook"
    hook = notifier_from_url("webhook+https://ops.example.test/hook", webhook_secret="k")
    assert isinstance(hook, WebhookNotifier)
    assert hook.url == "https://ops.example.test/hook"
    assert isinstance(notifier_from_url("https://ops.example.test/hook"), WebhookNotifier)

    mail = notifier_from_url(
        "smtps://me%40x.test:p%2Fw@mail.example.test"
        "?from=budget@x.test&to=a@x.test,b@x.test&to=c@x.test"
    )
    assert isinstance(mail, EmailNotifier)
    assert (mail.host, mail.port, mail.tls, mail.sender) == (
        "mail.example.test",
        465,
        "ssl",
        "budget@x.test",
    )
    assert mail.recipients == ["a@x.test", "b@x.test", "c@x.test"]
    assert (mail._username, mail._password) == ("me@x.test", "p/w")
    starttls = notifier_from_url("smtp://mail.example.test?from=a@x.test&to=b@x.test")
    assert isinstance(starttls, EmailNotifier)
    assert (starttls.port, starttls.tls, starttls._username) == (587, "starttls", None)
    relay = notifier_from_url("SMTP://127.0.0.1:2525?from=a@x.test&to=b@x.test&tls=none")
    assert isinstance(relay, EmailNotifier)
    assert (relay.port, relay.tls) == (2525, None)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("hooks.slack.com/services/secret-path", "not a notification URL"),
        ("smtp://mail.example.test?to=b@x.test", "from="),
        ("smtp://mail.example.test?from=a@x.test&to=", "to="),
        ("smtp://u:hunter2@mail.example.test?from=a@x.test&to=b@x.test&tls=maybe", "tls"),
        ("smtp://u:hunter2@mail.example.test:99999?from=a@x.test&to=b@x.test", "bad port"),
        ("smtp://u:hunter2@?from=a@x.test&to=b@x.test", "no SMTP host"),
        ("ftp://127.0.0.1/secret-path", "does not accept"),
    ],
)
@APPRISE_IMPORT_WARNING
def test_bad_urls_are_refused_without_their_secrets(url: str, message: str) -> None:
    with pytest.raises((InvalidInputError, NotificationError), match=message) as caught:
        notifier_from_url(url)
    assert "hunter2" not in str(caught.value)
    assert "secret-path" not in str(caught.value)


async def test_urls_deliver_to_real_receivers(
    receiver: Receiver, smtp: tuple[Inbox, int], alert: SpendingAlert
) -> None:
    inbox, port = smtp
    handlers = notifiers_from_urls(
        [
            receiver.url,
            f"slack+{receiver.url}",
            f"smtp://127.0.0.1:{port}?from=budget@example.test&to=ops@example.test&tls=none",
        ],
        webhook_secret=SECRET,
    )
    for handler in handlers:
        await handler(alert)
    webhook, slack = receiver.requests
    assert verify_signature(
        SECRET,
        webhook.body,
        webhook.headers["X-Smartspace-Timestamp"],
        webhook.headers["X-Smartspace-Signature"],
    )
    assert SpendingAlert.from_json(webhook.body) == alert
    assert json.loads(slack.body)["text"].startswith(":rotating_light: [CRITICAL] Daily spending")
    ((sender, recipients, message),) = inbox.messages
    assert (sender, recipients) == ("budget@example.test", ["ops@example.test"])
    assert message["X-Smartspace-Alert-Id"] == alert.alert_id


def test_monitor_command_delivers_to_its_notify_urls(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SMARTSPACE_BUDGET_URL", "SMARTSPACE_BUDGET_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATA_DIR", str(tmp_path))

    async def seed() -> None:
        backend = default_backend()
        try:
            await backend.deposit("user_001", "proj_001", Decimal(100), idempotency_key="d")
            await backend.set_policy("user_001", "proj_001", BudgetPolicy(daily_limit=Decimal(10)))
            usage = UsageEvent(provider="openai", model="gpt-4", actual_cost=Decimal("6"))
            await backend.record_usage("user_001", "proj_001", usage, idempotency_key="u")
        finally:
            await backend.aclose()  # type: ignore[attr-defined]

    asyncio.run(seed())
    runner = CliRunner()
    args = ["monitor", "--once", "--account", "user_001/proj_001", "--json"]
    result = runner.invoke(
        app, [*args, "--notify", receiver.url, "--webhook-secret", SECRET], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    printed = [SpendingAlert.from_json(line) for line in result.stdout.splitlines()]
    assert [a.metadata["percentage"] for a in printed] == [50]  # 6 of the daily 10
    (request,) = receiver.requests
    assert verify_signature(
        SECRET,
        request.body,
        request.headers["X-Smartspace-Timestamp"],
        request.headers["X-Smartspace-Signature"],
    )
    assert SpendingAlert.from_json(request.body).alert_id == printed[0].alert_id

    bad = runner.invoke(app, [*args, "--notify", "smtp://mail.example.test?to=b@x.test"])
    assert bad.exit_code == 2
    assert bad.stderr.strip().startswith("error: an smtp URL needs ?from=ADDRESS")
    assert len(receiver.requests) == 1

    # Run again (a restarted monitor): the alert state is in the ledger, nothing is resent.
    again = runner.invoke(
        app, [*args, "--notify", receiver.url, "--webhook-secret", SECRET], catch_exceptions=False
    )
    assert again.exit_code == 0, again.stderr
    assert len(receiver.requests) == 1


def test_monitor_command_fails_when_a_target_never_accepts(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SMARTSPACE_BUDGET_URL", "SMARTSPACE_BUDGET_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATA_DIR", str(tmp_path))

    async def seed() -> None:
        backend = default_backend()
        try:
            await backend.deposit("user_001", "proj_001", Decimal(100), idempotency_key="d")
            await backend.set_policy("user_001", "proj_001", BudgetPolicy(daily_limit=Decimal(10)))
            usage = UsageEvent(provider="openai", model="gpt-4", actual_cost=Decimal("6"))
            await backend.record_usage("user_001", "proj_001", usage, idempotency_key="u")
        finally:
            await backend.aclose()  # type: ignore[attr-defined]

    asyncio.run(seed())
    refusing = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    args = ["monitor", "--once", "--account", "user_001/proj_001", "--json"]
    started = time.monotonic()
    result = CliRunner().invoke(
        app,
        [*args, "--notify", refusing, "--notify", receiver.url, "--delivery-deadline", "1"],
        catch_exceptions=False,
    )
    assert result.exit_code == 2
    assert "alerts not accepted by: webhook http://127.0.0.1:" in result.stderr
    assert receiver.url.split("/hooks")[0] not in result.stderr.split("accepted by:")[1]
    assert len(receiver.requests) == 1  # the other target got its alert all the same
    assert time.monotonic() - started < 30
