"""Alert handlers named by URL, so a command line or an environment variable can configure them.

``smartspace-budget monitor --notify URL`` (repeatable, or ``SMARTSPACE_BUDGET_NOTIFY``)
delivers through :func:`notifier_from_url`; the scheme picks the notifier:

==========================================================  ==================================
URL                                                         handler
==========================================================  ==================================
``https://hooks.slack.com/services/...``,                   :class:`SlackNotifier`
``slack+https://...``
``http(s)://...``, ``webhook+http(s)://...``                :class:`WebhookNotifier`, signed
                                                            with ``webhook_secret`` if given
``smtp://[user[:password]@]host[:port]?from=A&to=B,C``      :class:`EmailNotifier`: STARTTLS on
                                                            587 (``tls=none`` for a local
                                                            relay); ``smtps://`` TLS on 465
anything else (``tgram://``, ``discord://``, ...)           :class:`AppriseNotifier` (extra)
==========================================================  ==================================

Secrets inside a URL (a Slack path, an SMTP password) are never repeated in error messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs, unquote, urlsplit

from smartspace_budget.budgets.notifiers import (
    AppriseNotifier,
    EmailNotifier,
    SlackNotifier,
    WebhookNotifier,
)
from smartspace_budget.budgets.spending_monitor import AlertHandler
from smartspace_budget.errors import InvalidInputError

__all__ = ["notifier_from_url", "notifiers_from_urls"]

_SLACK_HOST = "hooks.slack.com"
_SMTP_PORTS = {"smtp": 587, "smtps": 465}


def notifier_from_url(url: str, *, webhook_secret: str | None = None) -> AlertHandler:
    """The alert handler ``url`` names (see the module docstring).

    Raises :class:`InvalidInputError` for a malformed URL and
    :class:`~smartspace_budget.budgets.NotificationError` when an Apprise URL cannot be used
    (the extra is not installed, or Apprise does not know the scheme).
    """
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme or not rest:
        raise InvalidInputError(f"not a notification URL: {_shown(text)}")
    scheme = scheme.lower()
    if scheme in ("slack+https", "slack+http"):
        return SlackNotifier(f"{scheme.removeprefix('slack+')}://{rest}")
    if scheme in ("webhook+https", "webhook+http"):
        return WebhookNotifier(f"{scheme.removeprefix('webhook+')}://{rest}", secret=webhook_secret)
    if scheme in ("http", "https"):
        if urlsplit(text).hostname == _SLACK_HOST:
            return SlackNotifier(text)
        return WebhookNotifier(text, secret=webhook_secret)
    if scheme in _SMTP_PORTS:
        return _email(text, scheme)
    return AppriseNotifier(text)


def notifiers_from_urls(
    urls: Sequence[str], *, webhook_secret: str | None = None
) -> list[AlertHandler]:
    """One handler per URL, in order; the first bad URL raises (nothing half-configured)."""
    return [notifier_from_url(url, webhook_secret=webhook_secret) for url in urls]


def _email(url: str, scheme: str) -> EmailNotifier:
    parts = urlsplit(url)
    try:
        port = parts.port or _SMTP_PORTS[scheme]
    except ValueError:
        raise InvalidInputError(f"bad port in {_shown(url)}") from None
    if not parts.hostname:
        raise InvalidInputError(f"no SMTP host in {_shown(url)}")
    query = parse_qs(parts.query)
    senders = query.get("from", [])
    recipients = [r.strip() for value in query.get("to", []) for r in value.split(",")]
    recipients = [r for r in recipients if r]
    if len(senders) != 1 or not senders[0] or not recipients:
        raise InvalidInputError(f"an smtp URL needs ?from=ADDRESS&to=ADDRESS[,...]: {_shown(url)}")
    tls_choice = query.get("tls", ["starttls" if scheme == "smtp" else "ssl"])[-1].lower()
    tls = {"starttls": "starttls", "ssl": "ssl", "none": None}.get(tls_choice, "invalid")
    if tls == "invalid":
        raise InvalidInputError(f"tls must be starttls, ssl or none, got {tls_choice!r}")
    return EmailNotifier(
        parts.hostname,
        port,
        sender=senders[0],
        recipients=recipients,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


def _shown(url: str) -> str:
    """Scheme and host only: the rest of a notification URL may be a secret."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1].split("?", 1)[0]
    return f"{scheme}://{host}/..." if rest else repr(url[:20])
