"""The producers' sentiment inputs through the real ccxt client on the fake exchange: the taker
buy/sell ratio of Binance USDⓈ-M and OKX, every period from the cursor on exactly once, ascending,
in pages the exchanges allow, a temporary error retried; Bybit publishes none. No Spark or Kafka."""
from __future__ import annotations

import pytest

from common.exchange.ccxt_factory import create_ccxt_exchange
from common.exchange.market_data import MARKET_METRICS, MARKET_PAGE_LIMIT, MarketDataClient
from common.exchange.retry import RetryPolicy
from tests.fake_exchange import FakeExchange
from tests.fake_exchange.server import DAY, HOUR, MINUTE

HOUR_START = 1_717_200_000_000  # 2024-06-01T00:00:00Z
NOW = HOUR_START + 20_000
SYMBOL = "BTC/USDT:USDT"
TAKER_PATHS = {"binance": "/futures/data/takerlongshortRatio", "okx": "/api/v5/rubik/stat/taker-volume-contract"}


def fake_taker_ratio(ts_ms: int) -> float:
    """The fake's taker buy volume / sell volume at a time: 0.85 + 0.05 x (its 5-minute step mod 7)."""
    return 0.85 + 0.05 * (ts_ms // (5 * MINUTE) % 7)


@pytest.fixture(scope="module")
def fake():
    # No candles: the statistics then cover the last 30 days before now.
    with FakeExchange({}, now_ms=lambda: NOW, symbols=("BTCUSDT",)) as server:
        yield server
        assert server.unknown_requests == [], "the client called endpoints the fake does not serve"
        assert server.pending_faults() == [], "an injected fault was never triggered"


def market_data(exchange: str, fake: FakeExchange) -> MarketDataClient:
    client = create_ccxt_exchange(exchange, "swap", api_base_url=fake.base_url, timeout_ms=1000)
    client.enableRateLimit = False  # ccxt's throttle only slows the tests down
    data = MarketDataClient(exchange, client, RetryPolicy(max_attempts=3, base_delay_s=0.0), clock=lambda: NOW)
    data.load_markets()
    return data


def taker_requests(fake: FakeExchange, exchange: str, since: int) -> list[dict]:
    return [r for r in fake.requests[since:] if r["path"] == TAKER_PATHS.get(exchange)]


def test_only_bybit_has_no_taker_buy_ratio(fake):
    for exchange in ("binance", "okx", "bybit"):
        supported = [m for m in MARKET_METRICS if market_data(exchange, fake).supports(m)]
        expected = ["funding_rate", "open_interest", "long_short_ratio"]
        assert supported == expected + ([] if exchange == "bybit" else ["taker_buy_ratio"]), exchange


@pytest.mark.parametrize("exchange", ["binance", "okx"])
def test_taker_buy_ratio_every_period_once_ascending_in_pages(fake, exchange):
    mark = len(fake.requests)
    since_ms = NOW - 10 * DAY  # not on the hour: the first point is the next whole hour
    points = market_data(exchange, fake).market_points(SYMBOL, "taker_buy_ratio", "1h", since_ms)

    hours = list(range(HOUR_START - 10 * DAY + HOUR, HOUR_START + 1, HOUR))
    assert [p.ts_ms for p in points] == hours
    assert {(p.metric, p.period) for p in points} == {("taker_buy_ratio", "1h")}
    assert [p.value for p in points] == pytest.approx([fake_taker_ratio(t) for t in hours], abs=1e-4)
    assert all(p.value_usd is None and p.long_share is None for p in points)

    # 240 points: three pages of at most 100, then one that finds nothing newer.
    requests = taker_requests(fake, exchange, mark)
    assert len(requests) == 4 and all(int(r["params"]["limit"]) <= MARKET_PAGE_LIMIT for r in requests)
    if exchange == "binance":
        assert requests[0]["params"] == {"symbol": "BTCUSDT", "period": "1h", "startTime": str(since_ms),
                                         "limit": str(MARKET_PAGE_LIMIT)}
    else:  # a window of 100 periods from the cursor, bounds exclusive, OKX's period name
        assert requests[0]["params"] == {"instId": "BTC-USDT-SWAP", "period": "1H", "begin": str(since_ms - 1),
                                         "end": str(since_ms + 100 * HOUR), "limit": str(MARKET_PAGE_LIMIT)}


@pytest.mark.parametrize("exchange", ["binance", "okx"])
def test_a_temporary_error_on_the_taker_endpoint_is_retried_without_a_gap(fake, exchange):
    mark = len(fake.requests)
    fake.inject(exchange, TAKER_PATHS[exchange], "http_503")
    points = market_data(exchange, fake).market_points(SYMBOL, "taker_buy_ratio", "1h", HOUR_START - 5 * HOUR)
    assert [p.ts_ms for p in points] == list(range(HOUR_START - 5 * HOUR, HOUR_START + 1, HOUR))
    assert [r["fault"] for r in taker_requests(fake, exchange, mark)][:2] == ["http_503", None]


def test_binance_keeps_taker_volumes_30_days_so_an_older_cursor_starts_29_days_back(fake):
    points = market_data("binance", fake).market_points(SYMBOL, "taker_buy_ratio", "1h", NOW - 60 * DAY)
    assert points[0].ts_ms == HOUR_START - 29 * DAY + HOUR and points[-1].ts_ms == HOUR_START
