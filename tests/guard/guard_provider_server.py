"""A local stand-in for the OpenAI and Anthropic HTTP APIs, in their documented formats.

The official SDKs are pointed at it (``base_url``). Each test sets :class:`Behaviour`
(usage to report, whether to stream an error midway or answer with an HTTP error) and reads
back how many requests arrived and what they asked for.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Behaviour:
    """What the fake provider answers (usage numbers are in the provider's own terms).

    OpenAI's input and output counts include their details (cached, audio, reasoning);
    Anthropic's ``input_tokens`` is the fresh input only and ``cache_write_1h_tokens`` is
    the one-hour part of ``cache_write_tokens``. ``web_searches``/``file_searches`` become
    Responses ``web_search_call``/``file_search_call`` output items, and Anthropic's
    ``server_tool_use``; ``extra_usage`` is merged into the usage object and
    ``extra_output`` appended to a response's output items.
    """

    input_tokens: int = 12
    output_tokens: int = 30
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    input_image_tokens: int = 0
    web_searches: int = 0
    file_searches: int = 0
    web_fetches: int = 0
    extra_usage: dict[str, Any] = field(default_factory=dict)
    extra_output: list[dict[str, Any]] = field(default_factory=list)
    service_tier: str = "default"
    mode: str = "normal"  # normal | error_midway | http_error | no_usage
    chunks: int = 5
    chunk_delay: float = 0.0


@dataclass
class ProviderServer:
    """Runs the app on a loopback port in a thread; ``requests`` lists the bodies received."""

    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    async def _record(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(await request.body())
        with self._lock:
            self.requests.append({"path": request.url.path, **body})
        return body

    # -- OpenAI chat completions --------------------------------------------------------

    def _openai_usage(self) -> dict[str, Any]:
        b = self.behaviour
        return {
            "prompt_tokens": b.input_tokens,
            "completion_tokens": b.output_tokens,
            "total_tokens": b.input_tokens + b.output_tokens,
            "prompt_tokens_details": {
                "cached_tokens": b.cached_tokens,
                "audio_tokens": b.input_audio_tokens,
            },
            "completion_tokens_details": {
                "reasoning_tokens": b.reasoning_tokens,
                "audio_tokens": b.output_audio_tokens,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
            **b.extra_usage,
        }

    async def chat(self, request: Request) -> Response:
        body = await self._record(request)
        b = self.behaviour
        if b.mode == "http_error":
            return JSONResponse(
                {"error": {"message": "overloaded", "type": "server_error", "code": None}},
                status_code=503,
            )
        base = {
            "id": "chatcmpl-1",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_1",
            "service_tier": b.service_tier,
        }
        if not body.get("stream"):
            return JSONResponse(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "Hello there"},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": None if b.mode == "no_usage" else self._openai_usage(),
                }
            )
        include_usage = (body.get("stream_options") or {}).get("include_usage")

        async def events() -> AsyncIterator[bytes]:
            chunk = {**base, "object": "chat.completion.chunk"}
            for i in range(b.chunks):
                if b.mode == "error_midway" and i == 2:
                    error = {"error": {"message": "upstream failed", "type": "server_error"}}
                    yield f"data: {json.dumps(error)}\n\n".encode()
                    return
                delta = {"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}
                yield f"data: {json.dumps({**chunk, 'choices': [delta]})}\n\n".encode()
                if b.chunk_delay:
                    await asyncio.sleep(b.chunk_delay)
            stop = {"index": 0, "delta": {}, "finish_reason": "stop"}
            yield f"data: {json.dumps({**chunk, 'choices': [stop]})}\n\n".encode()
            if include_usage and b.mode != "no_usage":
                last = {**chunk, "choices": [], "usage": self._openai_usage()}
                yield f"data: {json.dumps(last)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    # -- OpenAI responses ---------------------------------------------------------------

    async def responses(self, request: Request) -> Response:
        body = await self._record(request)
        b = self.behaviour
        usage = {
            "input_tokens": b.input_tokens,
            "input_tokens_details": {
                "cached_tokens": b.cached_tokens,
                "cache_write_tokens": b.cache_write_tokens,
            },
            "output_tokens": b.output_tokens,
            "output_tokens_details": {"reasoning_tokens": b.reasoning_tokens},
            "total_tokens": b.input_tokens + b.output_tokens,
            **b.extra_usage,
        }
        tools: list[dict[str, Any]] = [
            {
                "type": "web_search_call",
                "id": f"ws_{i}",
                "status": "completed",
                "action": {"type": "search", "query": f"query {i}"},
            }
            for i in range(b.web_searches)
        ]
        tools += [
            {
                "type": "file_search_call",
                "id": f"fs_{i}",
                "status": "completed",
                "queries": [f"query {i}"],
                "results": None,
            }
            for i in range(b.file_searches)
        ]
        tools += b.extra_output
        response = {
            "id": "resp_1",
            "object": "response",
            "created_at": int(time.time()),
            "model": body["model"],
            "status": "completed",
            "output": [
                *tools,
                {
                    "type": "message",
                    "id": "msg_1",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hi", "annotations": []}],
                },
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "service_tier": b.service_tier,
            "usage": usage,
        }
        if not body.get("stream"):
            return JSONResponse(response)

        async def events() -> AsyncIterator[bytes]:
            created = {**response, "status": "in_progress", "output": [], "usage": None}
            n = len(tools)
            item = response["output"][n]
            part = item["content"][0]
            at = {"item_id": "msg_1", "output_index": n, "content_index": 0}
            steps: list[tuple[str, dict[str, Any]]] = [
                ("response.created", {"response": created}),
                ("response.in_progress", {"response": created}),
            ]
            for index, tool in enumerate(tools):
                steps += [
                    (
                        "response.output_item.added",
                        {"output_index": index, "item": {**tool, "status": "in_progress"}},
                    ),
                    ("response.output_item.done", {"output_index": index, "item": tool}),
                ]
            steps += [
                (
                    "response.output_item.added",
                    {"output_index": n, "item": {**item, "status": "in_progress", "content": []}},
                ),
                ("response.content_part.added", {**at, "part": {**part, "text": ""}}),
                ("response.output_text.delta", {**at, "delta": "Hi", "logprobs": []}),
                ("response.output_text.done", {**at, "text": "Hi", "logprobs": []}),
                ("response.content_part.done", {**at, "part": part}),
                ("response.output_item.done", {"output_index": n, "item": item}),
                ("response.completed", {"response": response}),
            ]
            for seq, (kind, payload) in enumerate(steps):
                data = {"type": kind, "sequence_number": seq, **payload}
                yield f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    # -- Anthropic messages -------------------------------------------------------------

    def _anthropic_usage(self, output_tokens: int) -> dict[str, Any]:
        b = self.behaviour
        return {
            "input_tokens": b.input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": b.cached_tokens,
            "cache_creation_input_tokens": b.cache_write_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": b.cache_write_tokens - b.cache_write_1h_tokens,
                "ephemeral_1h_input_tokens": b.cache_write_1h_tokens,
            },
            "server_tool_use": self._server_tools(),
            "service_tier": "standard",
            **b.extra_usage,
        }

    def _server_tools(self) -> dict[str, int]:
        b = self.behaviour
        return {"web_search_requests": b.web_searches, "web_fetch_requests": b.web_fetches}

    async def messages(self, request: Request) -> Response:
        body = await self._record(request)
        b = self.behaviour
        if b.mode == "http_error":
            return JSONResponse(
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                status_code=529,
            )
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": "Hello there"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": self._anthropic_usage(b.output_tokens),
        }
        if not body.get("stream"):
            return JSONResponse(message)

        def sse(kind: str, data: dict[str, Any]) -> bytes:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            start_usage = self._anthropic_usage(1)
            start_usage["server_tool_use"] = {"web_search_requests": 0, "web_fetch_requests": 0}
            start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
            yield sse("message_start", {"message": start})
            yield sse(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            )
            for i in range(b.chunks):
                if b.mode == "error_midway" and i == 2:
                    yield sse(
                        "error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}
                    )
                    return
                yield sse(
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "text_delta", "text": f"w{i} "}},
                )
                if b.chunk_delay:
                    await asyncio.sleep(b.chunk_delay)
            yield sse("content_block_stop", {"index": 0})
            delta: dict[str, Any] = {"delta": {"stop_reason": "end_turn", "stop_sequence": None}}
            if b.mode != "no_usage":
                delta["usage"] = {
                    "output_tokens": b.output_tokens,
                    "server_tool_use": self._server_tools(),
                }
            yield sse("message_delta", delta)
            yield sse("message_stop", {})

        return StreamingResponse(events(), media_type="text/event-stream")

    # -- OpenAI images --------------------------------------------------------------------

    async def images(self, request: Request) -> Response:
        """``images.generate``: one tiny PNG per image; usage in the Images API's terms
        (``input_tokens`` text and image, ``output_tokens`` all image tokens)."""
        body = await self._record(request)
        b = self.behaviour
        if b.mode == "http_error":
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        images = [{"b64_json": "iVBORw0KGgo="} for _ in range(body.get("n") or 1)]
        usage = {
            "input_tokens": b.input_tokens,
            "input_tokens_details": {
                "text_tokens": b.input_tokens - b.input_image_tokens,
                "image_tokens": b.input_image_tokens,
            },
            "output_tokens": b.output_tokens,
            "total_tokens": b.input_tokens + b.output_tokens,
        }
        return JSONResponse({"created": 1_700_000_000, "data": images, "usage": usage})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/images/generations", self.images, methods=["POST"]),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/responses", self.responses, methods=["POST"]),
                Route("/v1/messages", self.messages, methods=["POST"]),
            ]
        )


def start(server: ProviderServer) -> Iterator[ProviderServer]:
    """Serve ``server`` on a free loopback port for the duration of the generator."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server.port = sock.getsockname()[1]
    config = uvicorn.Config(server.app(), log_level="warning", lifespan="off")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not runner.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield server
    finally:
        runner.should_exit = True
        thread.join(timeout=10)
        sock.close()
