"""Reading usage out of the SDKs' objects, and charging what cannot be priced."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from anthropic.types import Usage as AnthropicUsage
from anthropic.types.raw_message_delta_event import RawMessageDeltaEvent
from anthropic.types.raw_message_start_event import RawMessageStartEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.completion_usage import CompletionUsage
from openai.types.responses import Response

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.guard.call import GuardedCall
from smartspace_budget.guard.costing import ProviderUsage, charge, price_usage
from smartspace_budget.guard.usage import (
    AnthropicStreamUsage,
    anthropic_usage,
    openai_chat_usage,
    openai_response_usage,
    openai_stream_event_usage,
)
from smartspace_budget.models import PricingData
from smartspace_budget.prices.catalog import PriceBook

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def price(**kw: object) -> PricingData:
    base: dict[str, object] = {
        "provider": "p",
        "model_name": "m",
        "input_price_per_1k": Decimal("0.003"),
        "output_price_per_1k": Decimal("0.015"),
        "effective_date": T0,
        "last_updated": T0,
    }
    base.update(kw)
    return PricingData.model_validate(base)


# -- OpenAI chat completions --------------------------------------------------------------


def test_chat_usage_reads_every_detail_from_the_sdk_object() -> None:
    usage = CompletionUsage.model_validate(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "total_tokens": 1500,
            "prompt_tokens_details": {
                "cached_tokens": 200,
                "audio_tokens": 300,
                "image_tokens": 100,
                "text_tokens": 600,
            },
            "completion_tokens_details": {
                "reasoning_tokens": 120,
                "audio_tokens": 80,
                "accepted_prediction_tokens": 7,
                "rejected_prediction_tokens": 9,
                "text_tokens": 300,
            },
        }
    )
    assert openai_chat_usage(usage) == ProviderUsage(
        input_tokens=1000,
        output_tokens=500,
        cached_input_tokens=200,
        input_audio_tokens=300,
        input_image_tokens=100,
        reasoning_tokens=120,
        output_audio_tokens=80,
    )


def test_chat_usage_keeps_unknown_counts_by_their_path() -> None:
    usage = CompletionUsage.model_validate(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 0, "video_seconds": 3},
            "search_context_requests": 2,
            "cost": 0.0042,
            "zero_field": 0,
            "tier": "flex",
        }
    )
    read = openai_chat_usage(usage)
    assert read is not None
    assert read.unmapped == (
        ("cost", 1),
        ("prompt_tokens_details.video_seconds", 3),
        ("search_context_requests", 2),
    )


def test_a_non_standard_service_tier_or_speed_is_unmapped() -> None:
    plain = {"prompt_tokens": 10, "completion_tokens": 5}
    for tier in (None, "auto", "default"):
        found = openai_chat_usage(plain, tier)
        assert found is not None
        assert found.unmapped == ()
    flex = openai_chat_usage(plain, "flex")
    assert flex is not None
    assert flex.unmapped == (("service_tier:flex", 1),)
    fast = anthropic_usage(
        {"input_tokens": 1, "output_tokens": 1, "service_tier": "standard", "speed": "fast"}
    )
    assert fast is not None
    assert fast.unmapped == (("speed:fast", 1),)


def test_chat_usage_clamps_a_malformed_report() -> None:
    read = openai_chat_usage(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 50, "audio_tokens": 40},
            "completion_tokens_details": {"reasoning_tokens": 9},
        }
    )
    assert read == ProviderUsage(
        10, 5, cached_input_tokens=10, input_audio_tokens=10, reasoning_tokens=5
    )
    assert openai_chat_usage({"prompt_tokens": 10**15, "completion_tokens": 1}) is not None
    assert openai_chat_usage({"completion_tokens": 1}) is None
    assert openai_chat_usage(None) is None


# -- OpenAI responses ---------------------------------------------------------------------


def response(output: list[dict[str, Any]], **usage: Any) -> Response:
    return Response.model_validate(
        {
            "id": "resp_1",
            "object": "response",
            "created_at": 0,
            "model": "gpt-5",
            "status": "completed",
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 900,
                "input_tokens_details": {
                    "cached_tokens": 100,
                    "cache_write_tokens": 200,
                    "cache_write_tokens_details": {"ttl_30m_tokens": 150, "ttl_12h_tokens": 50},
                },
                "output_tokens": 300,
                "output_tokens_details": {"reasoning_tokens": 200},
                "total_tokens": 1200,
                **usage,
            },
        }
    )


SEARCH = {"type": "web_search_call", "status": "completed", "action": {"type": "search"}}
FILES = {"type": "file_search_call", "status": "completed", "queries": ["q"]}


def test_responses_count_tool_calls_and_flag_the_ones_billed_elsewhere() -> None:
    found = openai_response_usage(
        response(
            [
                {**SEARCH, "id": "ws_1"},
                {**SEARCH, "id": "ws_2"},
                {**FILES, "id": "fs_1"},
                {
                    "type": "code_interpreter_call",
                    "id": "ci_1",
                    "status": "completed",
                    "code": "",
                    "container_id": "c",
                    "outputs": None,
                },
                {
                    "type": "image_generation_call",
                    "id": "ig_1",
                    "status": "completed",
                    "svg_usage": {
                        "input_tokens": 40,
                        "output_tokens": 60,
                        "reasoning_tokens": 0,
                        "total_tokens": 100,
                        "model": "gpt-5",
                    },
                },
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": "c1",
                    "name": "f",
                    "arguments": "{}",
                },
            ]
        )
    )
    assert found is not None
    assert (found.input_tokens, found.cached_input_tokens, found.cache_write_tokens) == (
        900,
        100,
        200,
    )
    assert (found.output_tokens, found.reasoning_tokens) == (300, 200)
    assert (found.web_searches, found.file_searches) == (2, 1)
    assert dict(found.unmapped) == {
        "code_interpreter_call": 1,
        "image_generation_call": 1,
        "image_generation_call.svg_usage.input_tokens": 40,
        "image_generation_call.svg_usage.output_tokens": 60,
    }


def test_a_responses_stream_reads_the_completed_event() -> None:
    done = response([{**SEARCH, "id": "ws_1"}])
    event = {"type": "response.completed", "sequence_number": 9, "response": done}
    found = openai_stream_event_usage(event)
    assert found is not None
    assert found.web_searches == 1
    assert openai_stream_event_usage({"type": "response.output_text.delta"}) is None


# -- Anthropic ----------------------------------------------------------------------------


def test_anthropic_usage_splits_cache_writes_and_flags_web_fetches() -> None:
    usage = AnthropicUsage.model_validate(
        {
            "input_tokens": 50,
            "output_tokens": 400,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 700,
            "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 500},
            "output_tokens_details": {"thinking_tokens": 150},
            "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 2},
            "service_tier": "standard",
            "inference_geo": "us",
        }
    )
    assert anthropic_usage(usage) == ProviderUsage(
        input_tokens=1750,
        output_tokens=400,
        cached_input_tokens=1000,
        cache_write_tokens=700,
        cache_write_1h_tokens=500,
        reasoning_tokens=150,
        web_searches=3,
        unmapped=(("server_tool_use.web_fetch_requests", 2),),
    )


def test_anthropic_cache_write_split_without_its_total_counts_the_parts() -> None:
    found = anthropic_usage(
        {
            "input_tokens": 10,
            "output_tokens": 1,
            "cache_creation": {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 20},
        }
    )
    assert found is not None
    assert (found.input_tokens, found.cache_write_tokens, found.cache_write_1h_tokens) == (
        60,
        50,
        20,
    )


def test_anthropic_stream_merges_start_and_delta_field_by_field() -> None:
    acc = AnthropicStreamUsage()
    start = RawMessageStartEvent.model_validate(
        {
            "type": "message_start",
            "message": {
                "id": "m",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 20,
                    "output_tokens": 1,
                    "cache_read_input_tokens": 100,
                    "cache_creation_input_tokens": 300,
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": 0,
                        "ephemeral_1h_input_tokens": 300,
                    },
                    "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                },
            },
        }
    )
    delta = RawMessageDeltaEvent.model_validate(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {
                "output_tokens": 250,
                "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 1},
            },
        }
    )
    acc.observe(start)
    assert acc.result() is None  # not final before message_delta
    acc.observe(delta)
    assert acc.result() == ProviderUsage(
        input_tokens=420,
        output_tokens=250,
        cached_input_tokens=100,
        cache_write_tokens=300,
        cache_write_1h_tokens=300,
        web_searches=2,
        unmapped=(("server_tool_use.web_fetch_requests", 1),),
    )


# -- charging what cannot be priced --------------------------------------------------------


def test_a_dimension_without_a_price_is_unpriced_not_free() -> None:
    priced = price_usage(price(), ProviderUsage(1000, 100, web_searches=2))
    assert priced.unpriced == {"web_searches": 2}
    assert priced.base_cost == Decimal("0.0045")
    searched = price(dimension_prices={"web_searches": Decimal("0.01")})
    assert price_usage(searched, ProviderUsage(1000, 100, web_searches=2)).unpriced == {}


def test_charge_is_the_priced_amount_or_the_hold_when_something_is_unpriced() -> None:
    usage = ProviderUsage(1000, 100)  # 0.0045 + 5% = 0.004725
    assert charge(price(), usage, Decimal(5), Decimal("1")).amount == Decimal("0.004725")
    flagged = ProviderUsage(1000, 100, unmapped=(("server_tool_use.web_fetch_requests", 1),))
    held = charge(price(), flagged, Decimal(5), Decimal("1"))
    assert (held.amount, held.priced, held.at_hold) == (Decimal(1), Decimal("0.004725"), True)
    assert held.unpriced == {"server_tool_use.web_fetch_requests": 1}
    above = charge(price(), flagged, Decimal(5), Decimal("0.001"))
    assert (above.amount, above.at_hold) == (Decimal("0.004725"), False)
    assert above.unpriced == held.unpriced


def test_unpriced_names_stay_within_what_an_entry_stores() -> None:
    many = {f"field_{i:03}": 1 for i in range(80)}
    found = openai_chat_usage({"prompt_tokens": 1, "completion_tokens": 1, **many})
    assert found is not None
    unpriced = charge(price(), found, Decimal(5), Decimal(1)).unpriced
    assert len(unpriced) == 50
    assert unpriced["other"] == 31
    assert sum(unpriced.values()) == 80


def test_provider_usage_validates_its_counts() -> None:
    with pytest.raises(InvalidInputError):
        ProviderUsage(10, 5, reasoning_tokens=6)
    with pytest.raises(InvalidInputError):
        ProviderUsage(10, 5, cached_input_tokens=6, cache_write_tokens=5)
    with pytest.raises(InvalidInputError):
        ProviderUsage(10, -1)
    with pytest.raises(InvalidInputError):
        ProviderUsage(10, 5, unmapped=(("x", -1),))
    assert (
        ProviderUsage(100, 5, cached_input_tokens=30, cache_write_tokens=20).fresh_input_tokens
        == 50
    )


def call() -> GuardedCall:
    return GuardedCall(
        call_id="c",
        request_id="r",
        provider="p",
        model="m",
        estimate=None,  # type: ignore[arg-type]
        reservation=None,  # type: ignore[arg-type]
        expected_cost=Decimal(0),
    )


def test_record_usage_takes_any_dimension_and_what_is_unpriced() -> None:
    guarded = call()
    guarded.record_usage(
        input_tokens=500,
        output_tokens=80,
        cache_write_tokens=100,
        cache_write_1h_tokens=100,
        input_audio_tokens=40,
        web_searches=1,
        unpriced={"web_fetches": 2},
    )
    assert guarded.usage == ProviderUsage(
        500,
        80,
        cache_write_tokens=100,
        cache_write_1h_tokens=100,
        input_audio_tokens=40,
        web_searches=1,
        unmapped=(("web_fetches", 2),),
    )
    guarded.record_usage(ProviderUsage(5, 1), unpriced={"code_executions": 1})
    assert guarded.usage == ProviderUsage(5, 1, unmapped=(("code_executions", 1),))
    with pytest.raises(InvalidInputError):
        guarded.record_usage(input_tokens=5, output_tokens=1, teleports=3)
    with pytest.raises(InvalidInputError):
        guarded.record_usage(input_tokens=5, output_tokens=1, reasoning_tokens=2)
    with pytest.raises(InvalidInputError):
        guarded.record_usage(ProviderUsage(5, 1), input_tokens=5)


# -- read and priced as genai-prices prices the same report --------------------------------


def catalog_price(provider: str, model: str) -> PricingData:
    return asyncio.run(PriceBook.from_genai_prices().get_pricing(provider, model))


SONNET = catalog_price("anthropic", "claude-sonnet-4-5")
REALTIME = catalog_price("openai", "gpt-realtime")
COUNT = st.integers(min_value=0, max_value=150_000)


def genai_total(provider: str, model: str, **usage: int) -> Decimal:
    found = genai_prices.calc_price(
        genai_prices.Usage(**usage), model, provider_id=provider, genai_request_timestamp=T0
    )
    return found.total_price


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(COUNT, COUNT, COUNT, st.data(), COUNT, st.integers(0, 20))
def test_an_anthropic_report_is_priced_as_genai_prices_prices_it(
    fresh: int, read: int, written: int, data: st.DataObject, output: int, searches: int
) -> None:
    one_hour = data.draw(st.integers(0, written))
    usage = anthropic_usage(
        {
            "input_tokens": fresh,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
            "cache_creation": {
                "ephemeral_5m_input_tokens": written - one_hour,
                "ephemeral_1h_input_tokens": one_hour,
            },
            "output_tokens": output,
            "server_tool_use": {"web_search_requests": searches, "web_fetch_requests": 0},
        }
    )
    assert usage is not None
    priced = price_usage(SONNET, usage, at=T0)
    assert priced.unpriced == {}
    assert priced.base_cost == genai_total(
        "anthropic",
        "claude-sonnet-4-5",
        input_tokens=fresh + read + written,
        cache_read_tokens=read,
        cache_write_tokens=written,
        cache_write_1h_tokens=one_hour,
        output_tokens=output,
        web_searches=searches,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_an_openai_audio_report_is_priced_as_genai_prices_prices_it(data: st.DataObject) -> None:
    prompt = data.draw(COUNT)
    audio = data.draw(st.integers(0, prompt))
    image = data.draw(st.integers(0, prompt - audio))
    cached_audio = data.draw(st.integers(0, audio))
    cached_image = data.draw(st.integers(0, image))
    cached = cached_audio + cached_image + data.draw(st.integers(0, prompt - audio - image))
    completion = data.draw(COUNT)
    audio_out = data.draw(st.integers(0, completion))
    usage = openai_chat_usage(
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "prompt_tokens_details": {
                "cached_tokens": cached,
                "audio_tokens": audio,
                "image_tokens": image,
                "cached_tokens_details": {
                    "audio_tokens": cached_audio,
                    "image_tokens": cached_image,
                },
            },
            "completion_tokens_details": {"audio_tokens": audio_out},
        }
    )
    assert usage is not None
    assert usage.unmapped == ()
    assert price_usage(REALTIME, usage, at=T0).base_cost == genai_total(
        "openai",
        "gpt-realtime",
        input_tokens=prompt,
        input_audio_tokens=audio,
        input_image_tokens=image,
        cache_read_tokens=cached,
        cache_audio_read_tokens=cached_audio,
        cache_image_read_tokens=cached_image,
        output_tokens=completion,
        output_audio_tokens=audio_out,
    )
