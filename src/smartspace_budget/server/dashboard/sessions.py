"""Dashboard sign-in sessions: the browser holds a signed random id, never the API key.

``POST /dashboard/login`` checks the key, then opens a session here: a random id (256 bits)
signed with HMAC-SHA256 under a secret of this process. The cookie is ``<id>.<signature>``;
the key stays on the server, beside the id, for at most ``ttl`` seconds. A cookie whose
signature does not match is ignored without a lookup (no id can be guessed into a hit, and
a forged one costs nothing), and signing out forgets the session.

Sessions live in the process that opened them, as the key cache does: after a restart, or
on another replica behind a load balancer without sticky sessions, the person signs in
again. The Bearer header keeps working everywhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["SESSION_TTL", "Sessions"]

SESSION_TTL = 8 * 3600
"""Seconds a sign-in lasts (the cookie's ``Max-Age`` too)."""


def _sign(secret: bytes, session_id: str) -> str:
    digest = hmac.new(secret, session_id.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class Sessions:
    """Open sessions by id (see the module docstring); at most ``max_sessions`` are kept."""

    ttl: float = SESSION_TTL
    clock: Callable[[], float] = time.monotonic
    max_sessions: int = 10_000
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _open: dict[str, tuple[str, float]] = field(default_factory=dict)

    def open(self, raw_key: str) -> str:
        """Start a session for a verified key; returns the cookie value (``id.signature``)."""
        now = self.clock()
        if len(self._open) >= self.max_sessions:
            for stale in [sid for sid, (_, end) in self._open.items() if end <= now]:
                del self._open[stale]
            while len(self._open) >= self.max_sessions:
                del self._open[next(iter(self._open))]
        session_id = secrets.token_urlsafe(32)
        self._open[session_id] = (raw_key, now + self.ttl)
        return f"{session_id}.{_sign(self.secret, session_id)}"

    def _id(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        session_id, _, signature = cookie.partition(".")
        if not session_id or not hmac.compare_digest(signature, _sign(self.secret, session_id)):
            return None
        return session_id

    def key_for(self, cookie: str | None) -> str | None:
        """The key of a valid, unexpired session cookie; ``None`` for anything else."""
        session_id = self._id(cookie)
        found = self._open.get(session_id) if session_id is not None else None
        if found is None or session_id is None:
            return None
        raw_key, end = found
        if end <= self.clock():
            del self._open[session_id]
            return None
        return raw_key

    def close(self, cookie: str | None) -> None:
        """Forget a session (signing out); unknown or forged cookies are ignored."""
        session_id = self._id(cookie)
        if session_id is not None:
            self._open.pop(session_id, None)
