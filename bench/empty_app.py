"""An ASGI app that answers every request with a fixed status-sized JSON body.

``bench/service.py`` serves it with uvicorn under the same load as the ledger service: the
rate and latency of a server that does no work at all, the ceiling any app on that server
and machine can reach.
"""

from __future__ import annotations

from typing import Any

BODY = (
    b'{"total_balance": 100.000000000, "available_balance": 100.000000000, '
    b'"reserved_amount": 0.000000000, "spent_today": 0.000000000, "spent_this_month": '
    b'0.000000000, "spent_total": 0.000000000, "daily_limit": null, "monthly_limit": null, '
    b'"per_request_limit": null}'
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
