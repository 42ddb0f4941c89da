"""The dashboard page and its exports, rendered from a seeded fake of the read API."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from smartspace_budget.backend.base import SpendingBucket
from smartspace_budget.models import loads
from smartspace_budget.periods import SpendingPeriod
from smartspace_budget.server.dashboard.charts import bar_chart, nice_ceiling
from smartspace_budget.server.dashboard.render import format_amount
from smartspace_budget.server.dashboard.view import Period, Workload, build_view
from smartspace_budget.server.routes.dashboard import COOKIE

from .conftest import (
    NOW,
    OTHER_PROJECT,
    OTHER_USER,
    PROJECT,
    SEEDED_BALANCE,
    USER,
    FakeBackend,
    fake_compare,
    make_app,
)

ALICE = {"Authorization": "Bearer ssb_alice_test"}
ADMIN = {"Authorization": "Bearer ssb_admin_test"}


@pytest.fixture(scope="module")
def client(seeded: FakeBackend) -> TestClient:
    return TestClient(make_app(seeded))


def _bars(html: str) -> list[str]:
    svg = re.search(r'<svg id="spend-chart".*?</svg>', html, re.S)
    assert svg is not None
    return re.findall(r'<rect class="bar [^"]*"[^>]*data-value="([^"]+)"', svg.group(0))


def test_page_shows_balance_limits_and_top_model(client: TestClient) -> None:
    response = client.get("/dashboard", headers=ALICE)
    assert response.status_code == 200
    html = response.text
    assert f'data-amount="{SEEDED_BALANCE}"' in html
    assert "84.20" in html
    assert 'id="available" data-amount="71.700000000"' in html
    assert 'id="reserved" data-amount="12.500000000"' in html
    assert "of 2.50 daily limit" in html
    assert "of 60.00 monthly limit" in html
    assert "America/New_York" in html
    top = re.search(r'<tr class="top-row"><th scope="row" class="name">([^<]+)</th>', html)
    assert top is not None
    assert top.group(1) == "openai"
    tables = re.findall(r'<tr class="top-row"><th scope="row" class="name">([^<]+)</th>', html)
    assert tables == ["openai", "gpt-4o"]


@pytest.mark.parametrize(
    ("period", "bars"),
    # Current window and the one before it: Nov (30) + Oct (31) days; two ISO weeks of
    # days; two days of hours; two years of months.
    [("month", 61), ("week", 14), ("day", 48), ("year", 24)],
)
def test_chart_draws_one_bar_per_window(client: TestClient, period: str, bars: int) -> None:
    html = client.get(f"/dashboard?period={period}", headers=ALICE).text
    assert len(_bars(html)) == bars
    assert f'data-bars="{bars}"' in html


def test_month_chart_draws_the_daily_limit_and_marks_days_over_it(client: TestClient) -> None:
    html = client.get("/dashboard?period=month", headers=ALICE).text
    assert 'class="limit-line"' in html
    assert "daily limit 2.50" in html
    over = re.findall(r'<rect class="bar (?:current|previous) over"[^>]*data-value="([^"]+)"', html)
    assert over
    assert all(Decimal(value) > Decimal("2.50") for value in over)


def test_year_chart_draws_the_monthly_limit(client: TestClient) -> None:
    html = client.get("/dashboard?period=year", headers=ALICE).text
    assert "monthly limit 60.00" in html


async def test_chart_bars_carry_the_backend_series_exactly(seeded: FakeBackend) -> None:
    view = await build_view(seeded, USER, PROJECT, period=Period.WEEK, now=NOW)
    html = TestClient(make_app(seeded)).get("/dashboard?period=week", headers=ALICE).text
    expected = [format(b.spent, "f") for b in (*view.chart.previous, *view.chart.current)]
    assert _bars(html) == expected


def test_forecast_and_runout_are_shown(client: TestClient) -> None:
    html = client.get("/dashboard", headers=ALICE).text
    assert 'id="forecast"' in html
    assert "over the limit" in html  # the seeded burn rate overshoots 60 by month end
    runout = re.search(r'<p id="runout"[^>]*>.*?Runs out <time datetime="([^"]+)"', html, re.S)
    assert runout is not None
    assert datetime.fromisoformat(runout.group(1)) > NOW


def test_alerts_are_listed_with_their_levels_newest_first(client: TestClient) -> None:
    html = client.get("/dashboard", headers=ALICE).text
    levels = re.findall(r'<li class="alert level-(\w+)">', html)
    assert levels == ["warning", "critical"]
    assert "WARNING" in html
    assert "CRITICAL" in html


def test_price_comparison_follows_the_typed_workload(client: TestClient) -> None:
    html = client.get(
        "/dashboard?input_tokens=2000&output_tokens=0&models=openai/gpt-4o,google/gemini-1.5-flash",
        headers=ALICE,
    ).text
    table = re.search(r'<table id="comparison">.*?</table>', html, re.S)
    assert table is not None
    rows = re.findall(r'<th scope="row" class="name">([^<]+?)(?: <span|</th>)', table.group(0))
    assert rows == ["google/gemini-1.5-flash", "openai/gpt-4o"]  # cheapest first
    # gpt-4o: 2000 tokens at 0.0025/1k = 0.005, plus 5% = 0.00525
    assert "0.005250" in table.group(0)
    assert 'value="2000"' in html


def test_comparison_error_is_shown_not_raised(client: TestClient) -> None:
    html = client.get("/dashboard?models=acme/unknown-model", headers=ALICE).text
    assert "unknown model acme/unknown-model" in html


def test_a_bad_workload_is_an_error_inside_the_form_not_a_new_page(client: TestClient) -> None:
    response = client.get("/dashboard?input_tokens=lots&output_tokens=7", headers=ALICE)
    assert response.status_code == 200
    html = response.text
    assert 'id="balance"' in html  # the rest of the page is still there
    error = re.search(r'<p class="flag warn" id="compare-error" role="alert">([^<]*)</p>', html)
    assert error is not None
    assert "input_tokens must be a whole number" in error.group(1)
    assert re.search(r'id="input_tokens"[^>]*value="lots"[^>]*aria-invalid="true"', html)
    assert re.search(r'id="output_tokens"[^>]*value="7"[^>]*aria-invalid="false"', html)
    assert 'id="comparison"' not in html
    # An export of a workload it cannot read still refuses it; so does an unknown period.
    refused = client.get("/dashboard/export.csv?input_tokens=lots", headers=ALICE)
    assert refused.status_code == 400
    assert client.get("/dashboard?period=fortnight", headers=ALICE).status_code == 400


def test_every_id_is_unique_and_every_control_has_a_label(client: TestClient) -> None:
    html = client.get("/dashboard", headers=ALICE).text
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    controls = re.findall(r"<(?:input|select|textarea)\b([^>]*)>", html)
    for attributes in controls:
        if 'type="hidden"' in attributes:
            continue
        found = re.search(r'\bid="([^"]+)"', attributes)
        assert found is not None, attributes
        assert found.group(1) in labelled, attributes


def test_an_empty_bar_is_still_drawn(client: TestClient) -> None:
    html = client.get("/dashboard?period=day", headers=ALICE).text
    heights = re.findall(r'<rect class="bar [^"]*"[^>]*\bheight="([^"]+)"', html)
    assert heights
    assert min(float(h) for h in heights) >= 2


def test_export_csv_holds_what_is_on_screen(client: TestClient) -> None:
    response = client.get("/dashboard/export.csv?period=week", headers=ALICE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    by_name = {(r["section"], r["name"]): r for r in rows}
    assert by_name[("balance", "total_balance")]["amount"] == str(SEEDED_BALANCE)
    assert by_name[("balance", "reserved_amount")]["amount"] == "12.500000000"
    chart = [r for r in rows if r["section"].startswith("chart_")]
    assert len(chart) == 14
    page = client.get("/dashboard?period=week", headers=ALICE).text
    assert [r["amount"] for r in chart] == _bars(page)
    models = [r["name"] for r in rows if r["section"] == "model"]
    assert models[0] == "gpt-4o"
    assert [r["section"] for r in rows].count("alert") == 2


def test_export_json_is_exact_and_matches_the_csv(client: TestClient) -> None:
    response = client.get("/dashboard/export.json?period=day", headers=ALICE)
    assert response.status_code == 200
    data = loads(response.text)
    assert data["account"] == {"user_id": USER, "project_id": PROJECT}
    assert data["period"] == "day"
    assert data["timezone"] == "America/New_York"
    assert data["balance"]["total_balance"] == SEEDED_BALANCE
    assert isinstance(data["balance"]["available_balance"], Decimal)
    assert len(data["chart"]["current"]) == 24
    assert data["chart"]["granularity"] == "hourly"
    assert data["by_model"][0]["model"] == "gpt-4o"
    csv_rows = list(
        csv.DictReader(
            io.StringIO(client.get("/dashboard/export.csv?period=day", headers=ALICE).text)
        )
    )
    csv_current = [Decimal(r["amount"]) for r in csv_rows if r["section"] == "chart_current"]
    assert csv_current == [b["spent"] for b in data["chart"]["current"]]


def test_another_tenant_answers_404_with_none_of_its_data(client: TestClient) -> None:
    response = client.get(
        f"/dashboard?user_id={OTHER_USER}&project_id={OTHER_PROJECT}", headers=ALICE
    )
    assert response.status_code == 404
    assert OTHER_USER not in response.text
    export = client.get(
        f"/dashboard/export.json?user_id={OTHER_USER}&project_id={OTHER_PROJECT}", headers=ALICE
    )
    assert export.status_code == 404
    assert export.json() == {"error": "NotFoundError", "detail": "no such account"}


def test_missing_key_is_sent_to_sign_in_and_wrong_key_gets_401(client: TestClient) -> None:
    missing = client.get("/dashboard?period=week", follow_redirects=False)
    assert missing.status_code == 303
    assert missing.headers["location"] == "/dashboard/login?period=week"
    form = client.get(missing.headers["location"])
    assert 'action="/dashboard/login"' in form.text
    assert 'name="next" value="period=week"' in form.text
    wrong = client.get("/dashboard", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert 'action="/dashboard/login"' in wrong.text
    assert client.get("/dashboard/export.csv").status_code == 401


def test_pricing_key_is_forbidden(client: TestClient) -> None:
    response = client.get("/dashboard", headers={"Authorization": "Bearer ssb_pricing_test"})
    assert response.status_code == 403


def test_admin_picks_an_account_then_sees_it(client: TestClient) -> None:
    picker = client.get("/dashboard?period=week", headers=ADMIN)
    assert picker.status_code == 200
    assert "user_id=alice&amp;project_id=research" in picker.text
    assert "period=week" in picker.text
    page = client.get(f"/dashboard?user_id={USER}&project_id={PROJECT}", headers=ADMIN)
    assert page.status_code == 200
    assert "84.20" in page.text
    half = client.get(f"/dashboard?user_id={USER}", headers=ADMIN)
    assert half.status_code == 400


def test_login_sets_an_httponly_cookie_that_opens_the_page(seeded: FakeBackend) -> None:
    client = TestClient(make_app(seeded))
    refused = client.post("/dashboard/login", data={"api_key": "wrong"})
    assert refused.status_code == 401
    assert "set-cookie" not in refused.headers
    signed_in = client.post(
        "/dashboard/login",
        data={"api_key": "ssb_alice_test", "next": "period=day&evil=1&user_id=alice"},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/dashboard?period=day&user_id=alice"
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    assert client.get("/dashboard").status_code == 200
    client.post("/dashboard/logout")
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def test_the_sign_in_cookie_holds_a_signed_session_id_never_the_key(seeded: FakeBackend) -> None:
    client = TestClient(make_app(seeded))
    signed_in = client.post(
        "/dashboard/login", data={"api_key": "ssb_alice_test"}, follow_redirects=False
    )
    value = signed_in.cookies[COOKIE]
    assert "ssb_alice_test" not in signed_in.headers["set-cookie"]
    session_id, _, signature = value.partition(".")
    assert len(session_id) >= 40
    assert signature
    assert client.get("/dashboard").status_code == 200
    # Another id, or the same id with a signature of its own making, opens nothing.
    for forged in (f"{session_id}.x{signature[1:]}", f"A{session_id[1:]}.{signature}"):
        other = TestClient(client.app, cookies={COOKIE: forged})
        assert other.get("/dashboard", follow_redirects=False).status_code == 303
    # Signing out ends the session on the server, not only in this browser.
    client.post("/dashboard/logout")
    replay = TestClient(client.app, cookies={COOKIE: value})
    assert replay.get("/dashboard", follow_redirects=False).status_code == 303


def test_static_files_are_served_from_the_package(client: TestClient) -> None:
    css = client.get("/dashboard/static/dashboard.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "#0072B2" in css.text  # Okabe-Ito blue
    assert client.get("/dashboard/static/dashboard.js").status_code == 200
    assert client.get("/dashboard/static/..%2Fview.py").status_code == 404


def test_page_references_no_other_origin(client: TestClient) -> None:
    html = client.get("/dashboard", headers=ALICE).text
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
    response = client.get("/dashboard", headers=ALICE)
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_untrusted_names_are_escaped(seeded: FakeBackend) -> None:
    backend = FakeBackend(NOW)
    from .conftest import seed

    seed(backend, hours=48)
    backend.spend(
        Decimal(9),
        NOW.replace(minute=0),
        provider="evil",
        model="<script>alert(1)</script>",
        user_id=USER,
        project_id=PROJECT,
    )
    html = TestClient(make_app(backend)).get("/dashboard", headers=ALICE).text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_chart_reads_series_not_entries(seeded: FakeBackend) -> None:
    """A year view asks for two years of *monthly* buckets, never hourly rows."""
    seeded.series_calls.clear()
    TestClient(make_app(seeded)).get("/dashboard?period=year", headers=ALICE)
    granularities = {g for g, _, _ in seeded.series_calls}
    assert SpendingPeriod.HOURLY not in granularities
    assert SpendingPeriod.MONTHLY in granularities


def test_workload_parsing() -> None:
    assert Workload.parse("1_000", "2,000", None) == Workload(1000, 2000, ())
    assert Workload.parse(None, "", " openai/gpt-4o , openai/gpt-4o").models == (
        ("openai", "gpt-4o"),
    )
    for bad in ("-1", "1.5", "10e3", "999999999999"):
        with pytest.raises(ValueError, match="input_tokens"):
            Workload.parse(bad, None, None)
    with pytest.raises(ValueError, match="provider/model"):
        Workload.parse(None, None, "gpt-4o")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "1"),
        ("0.7", "1"),
        ("1.01", "2"),
        ("2.4", "2.5"),
        ("4", "5"),
        ("61", "1E+2"),
        ("0.0031", "0.005"),
    ],
)
def test_nice_ceiling(value: str, expected: str) -> None:
    assert nice_ceiling(Decimal(value)) == Decimal(expected)


def test_format_amount() -> None:
    assert format_amount(Decimal("1234.5")) == "1,234.50"
    assert format_amount(Decimal("0.000236")) == "0.000236"
    assert format_amount(None) == "—"
    assert format_amount(Decimal("-3")) == "-3.00"


def test_empty_windows_draw_empty_bars_and_scale_to_the_limit() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    bucket = SpendingBucket(
        start=start, end=start.replace(day=2), spent=Decimal(0), request_count=0
    )
    chart = bar_chart([bucket], [bucket], SpendingPeriod.DAILY, ZoneInfo("UTC"), Decimal(3))
    assert [b.height for b in chart.bars] == [0, 0]
    assert chart.scale_max >= 3
    assert chart.limit_y is not None


async def test_build_view_without_comparison_or_alerts(seeded: FakeBackend) -> None:
    view = await build_view(seeded, OTHER_USER, OTHER_PROJECT, now=NOW)
    assert view.alerts == []
    assert view.comparison.error is not None
    assert view.top_model is None
    assert view.forecast.burn_rate_per_day == 0
    with_compare = await build_view(seeded, USER, PROJECT, compare=fake_compare, now=NOW)
    assert with_compare.comparison.rows
    assert with_compare.top_model is not None
    assert with_compare.top_model[0] == "gpt-4o"


def test_an_account_without_spending_renders_calmly(client: TestClient) -> None:
    response = client.get(
        f"/dashboard?user_id={OTHER_USER}&project_id={OTHER_PROJECT}", headers=ADMIN
    )
    assert response.status_code == 200
    html = response.text
    assert "No spending in this month." in html
    assert "No daily limit" in html
    assert "Balance lasts at this rate" in html
    assert len(_bars(html)) == 61
    assert all(Decimal(v) == 0 for v in _bars(html))


def test_sign_in_from_another_site_is_refused(seeded: FakeBackend) -> None:
    client = TestClient(make_app(seeded))
    forged = client.post(
        "/dashboard/login",
        data={"api_key": "ssb_alice_test"},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert "set-cookie" not in forged.headers
    own = client.post(
        "/dashboard/login",
        data={"api_key": "ssb_alice_test"},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert own.status_code == 303


def _day_buckets(first: datetime, days: int, spent: str) -> list[SpendingBucket]:
    return [
        SpendingBucket(
            start=first + timedelta(days=i),
            end=first + timedelta(days=i + 1),
            spent=Decimal(spent),
            request_count=1,
        )
        for i in range(days)
    ]


@pytest.mark.parametrize(
    ("spent", "labels"),
    [
        ("90", ["0", "25", "50", "75", "100"]),
        ("4.2", ["0.00", "1.25", "2.50", "3.75", "5.00"]),
        ("1.8", ["0.0", "0.5", "1.0", "1.5", "2.0"]),
        ("2300", ["0", "625", "1,250", "1,875", "2,500"]),
    ],
)
def test_axis_labels_share_the_fewest_decimals_that_write_them_exactly(
    spent: str, labels: list[str]
) -> None:
    """Short labels (``100``, not ``100.00``) fit the axis when a phone scales the chart."""
    days = _day_buckets(datetime(2026, 11, 1, tzinfo=UTC), 3, spent)
    chart = bar_chart([], days, SpendingPeriod.DAILY, ZoneInfo("UTC"))
    assert [tick.label for tick in chart.ticks] == labels
    assert [Decimal(label.replace(",", "")) for label in labels] == [t.value for t in chart.ticks]


def test_narrow_screens_drop_every_other_axis_label_but_each_windows_first() -> None:
    previous = _day_buckets(datetime(2026, 10, 1, tzinfo=UTC), 31, "1")
    current = _day_buckets(datetime(2026, 11, 1, tzinfo=UTC), 30, "1")
    chart = bar_chart(previous, current, SpendingPeriod.DAILY, ZoneInfo("UTC"))
    every = 61 // 10
    for series in ("previous", "current"):
        bars = [bar for bar in chart.bars if bar.series == series]
        shown = [(i, bar) for i, bar in enumerate(bars) if bar.show_label]
        assert len(shown) >= 3
        # Every other label, and the previous window's last one near the gap, go on a phone.
        expected = [
            n % 2 == 1 or (series == "previous" and len(bars) - i <= 2 * every)
            for n, (i, _) in enumerate(shown)
        ]
        assert [bar.dense for _, bar in shown] == expected
        assert not shown[0][1].dense  # each window's first label stays
    assert not any(bar.dense for bar in chart.bars if not bar.show_label)


def test_phone_layout_keeps_the_comparison_total_and_hides_the_split(
    client: TestClient,
) -> None:
    html = client.get("/dashboard?models=openai/gpt-4o", headers=ALICE).text
    table = re.search(r'<table id="comparison">.*?</table>', html, re.S)
    assert table is not None
    assert len(re.findall(r'class="num part"', table.group(0))) == 4  # 2 header + 2 cells
    assert re.search(r'<td class="num">0\.007875</td>', table.group(0))
    css = client.get("/dashboard/static/dashboard.css").text
    phone = css[css.index("@media (max-width: 600px)") :]
    assert "#comparison .part { display: none; }" in phone
    assert "min-width" not in phone  # charts fit the screen instead of scrolling sideways


def test_csv_amounts_are_positional_never_exponents() -> None:
    from smartspace_budget.server.dashboard import export

    assert export._amount(Decimal("0E-9")) == "0.000000000"
    assert export._amount(Decimal("5E-9")) == "0.000000005"
    assert export._amount(None) == ""
