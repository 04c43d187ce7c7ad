"""The fake exchange speaks real Binance USDⓈ-M / Bybit v5 / OKX v5 payloads: the real ccxt client, built by our
factory and pointed at it, loads markets, pages candles and statistics, and raises the documented ccxt errors on
injected faults. No Spark or Kafka; the whole file runs in a few seconds."""
from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

import ccxt
import pytest

from common.exchange.ccxt_factory import create_ccxt_exchange
from tests.fake_exchange import FakeExchange
from tests.fake_exchange.server import DAY, HOUR, MINUTE, interval_ms

END = 1_717_200_000_000          # 2024-06-01T00:00:00Z: the series ends here
START = END - 3 * DAY
NOW = END - 5 * MINUTE + 20_000  # the exchanges' clock: the last minutes of the series are still in their future
EXCHANGES = ("binance", "bybit", "okx")
SYMBOL = "BTC/USDT:USDT"
MARKET_IDS = {"binance": "BTCUSDT", "bybit": "BTCUSDT", "okx": "BTC-USDT-SWAP"}
KLINE_PATHS = {"binance": "/fapi/v1/klines", "bybit": "/v5/market/kline", "okx": "candles"}
# Largest page one fetch_ohlcv(since=...) gets: ccxt caps Binance at 1000 although fapi allows 1500; for a `since`
# older than 1,439 bars ccxt asks OKX's history-candles, whose pages hold 100.
PAGE_MAX = {"binance": 1000, "bybit": 1000, "okx": 100}
# Short, so that the "timeout" faults cost little; the fake answers anything else in milliseconds.
CLIENT_TIMEOUT_MS = 500

# What each injected fault becomes in ccxt 4.5.90 (RateLimitExceeded and DDoSProtection are both NetworkErrors,
# neither subclasses the other).
FAULT_ERRORS = {
    "timeout": {"binance": ccxt.RequestTimeout, "bybit": ccxt.RequestTimeout, "okx": ccxt.RequestTimeout},
    # Binance: ccxt maps any HTTP 429/418 to DDoSProtection before reading the -1003 body; Bybit answers HTTP 200
    # with retCode 10006, OKX HTTP 429 with code 50011: both RateLimitExceeded.
    "http_429": {"binance": ccxt.DDoSProtection, "bybit": ccxt.RateLimitExceeded, "okx": ccxt.RateLimitExceeded},
    "http_500": {ex: ccxt.ExchangeNotAvailable for ex in EXCHANGES},
    "http_503": {ex: ccxt.ExchangeNotAvailable for ex in EXCHANGES},
    # "malformed" raises nothing: ccxt swallows a 200 body that isn't JSON (see the test).
}


def _minute_candles(first_price: float, tick: float, seed: int) -> list[list[float]]:
    """A bounded deterministic walk in whole ticks (the moves over any 21 minutes sum to zero)."""
    places = len(str(tick).split(".")[1])
    price, rows = first_price, []
    for i in range(3 * DAY // MINUTE):
        move = ((i * 37 + seed) % 21 - 10) * tick
        o, c = round(price, places), round(price + move, places)
        h, l = round(max(o, c) + (i % 4) * tick, places), round(min(o, c) - (i % 3) * tick, places)
        rows.append([START + i * MINUTE, o, h, l, c, round(0.25 + (i % 17) * 0.125, 3)])
        price = c
    return rows


def _aggregate(rows: list[list[float]], interval: str) -> list[list[float]]:
    n = interval_ms(interval) // MINUTE
    return [[chunk[0][0], chunk[0][1], max(r[2] for r in chunk), min(r[3] for r in chunk), chunk[-1][4],
             round(sum(r[5] for r in chunk), 3)] for chunk in (rows[i:i + n] for i in range(0, len(rows), n))]


def _build_series() -> dict[tuple[str, str, str], list[list[float]]]:
    series = {}
    for n, exchange in enumerate(EXCHANGES):  # each exchange its own prices, so a mix-up shows
        for symbol, price, tick in (("BTCUSDT", 67_000.0 + 10 * n, 0.1), ("ETHUSDT", 3_800.0 + n, 0.01)):
            minutes = _minute_candles(price, tick, seed=n)
            series[(exchange, symbol, "1m")] = minutes
            for interval in ("15m", "1h", "4h"):
                series[(exchange, symbol, interval)] = _aggregate(minutes, interval)
    return series


SERIES = _build_series()


def closed(exchange: str, interval: str, symbol: str = "BTCUSDT") -> list[list[float]]:
    """The candles an exchange has at NOW: those closed by then."""
    return [row for row in SERIES[(exchange, symbol, interval)] if row[0] + interval_ms(interval) <= NOW]


def get(fake: FakeExchange, path: str, **params) -> object:
    """A raw GET, bypassing ccxt (and its throttle): for checking the payloads themselves."""
    with urllib.request.urlopen(f"{fake.base_url}{path}?{urllib.parse.urlencode(params)}", timeout=5) as response:
        return json.loads(response.read())


def kline_requests(fake: FakeExchange, exchange: str, since: int) -> list[dict]:
    return [r for r in fake.requests[since:] if r["exchange"] == exchange and KLINE_PATHS[exchange] in r["path"]]


@pytest.fixture(scope="module")
def fake():
    with FakeExchange(SERIES, now_ms=lambda: NOW) as server:
        yield server
        assert server.unknown_requests == [], "ccxt called endpoints the fake does not serve"


@pytest.fixture(autouse=True)
def _clean_state(fake):
    fake.forming_candle = False
    yield
    fake.forming_candle = False
    assert fake.pending_faults() == [], "an injected fault was never triggered"


@pytest.fixture(scope="module")
def clients(fake):
    return {ex: create_ccxt_exchange(ex, "swap", api_base_url=fake.base_url, timeout_ms=CLIENT_TIMEOUT_MS)
            for ex in EXCHANGES}


@pytest.fixture(params=EXCHANGES)
def exchange(request):
    return request.param


def test_load_markets_lists_usdt_linear_perpetuals(clients, exchange):
    client = clients[exchange]
    markets = client.load_markets(reload=True)
    btc, eth = markets[SYMBOL], markets["ETH/USDT:USDT"]
    assert btc["id"] == MARKET_IDS[exchange]
    assert (btc["type"], btc["swap"], btc["linear"], btc["active"], btc["settle"]) == ("swap", True, True, True, "USDT")
    assert btc["precision"]["price"] == 0.1 and eth["precision"]["price"] == 0.01
    if exchange == "okx":  # OKX sizes are contracts of 0.01 BTC
        assert btc["contractSize"] == 0.01 and btc["precision"]["amount"] == 0.01
    else:
        assert btc["precision"]["amount"] == 0.001 and btc["limits"]["amount"]["min"] == 0.001
        assert btc["limits"]["cost"]["min"] == 5
    assert client.fetch_time() == NOW


def test_fetch_ohlcv_returns_the_series_ascending(clients, fake, exchange):
    mark = len(fake.requests)
    limit = PAGE_MAX[exchange]
    candles = clients[exchange].fetch_ohlcv(SYMBOL, "1m", since=START, limit=limit)
    assert candles == closed(exchange, "1m")[:limit]
    (request,) = kline_requests(fake, exchange, mark)
    assert int(request["params"]["limit"]) == limit
    if exchange == "okx":
        assert request["path"] == "/api/v5/market/history-candles"


def test_paging_forward_returns_every_candle_exactly_once(clients, fake, exchange):
    client, mark, page_limit, interval = clients[exchange], len(fake.requests), 100, "15m"
    got, since = [], START
    while page := client.fetch_ohlcv(SYMBOL, interval, since=since, limit=page_limit):
        assert len(page) <= page_limit
        got += page
        since = page[-1][0] + 1
    assert got == closed(exchange, interval)
    requests = kline_requests(fake, exchange, mark)
    assert all(int(r["params"]["limit"]) <= page_limit for r in requests)
    if exchange == "okx":  # the data is older than 1,439 bars by ccxt's (wall) clock: all from history-candles
        assert {r["path"] for r in requests} == {"/api/v5/market/history-candles"}


def test_okx_history_candles_answer_the_newest_100_of_a_wider_window(clients, fake):
    # ccxt asks history-candles for limit=300 and a 300-bar window (before=since-1, after=since+300 bars); OKX
    # answers the newest 100 bars before `after`, so the first 200 are skipped: an OKX pager must ask for <= 100.
    mark = len(fake.requests)
    candles = clients["okx"].fetch_ohlcv(SYMBOL, "1m", since=START, limit=300)
    (request,) = kline_requests(fake, "okx", mark)
    assert request["path"] == "/api/v5/market/history-candles" and request["params"]["limit"] == "300"
    assert candles == closed("okx", "1m")[200:300]


def test_latest_candles_without_since(clients, fake, exchange):
    mark = len(fake.requests)
    assert clients[exchange].fetch_ohlcv(SYMBOL, "1h", limit=10) == closed(exchange, "1h")[-10:]
    if exchange == "okx":
        assert kline_requests(fake, "okx", mark)[0]["path"] == "/api/v5/market/candles"


def test_forming_candle_only_when_flagged(clients, fake, exchange):
    client, last_closed = clients[exchange], closed(exchange, "1m")[-1]
    assert client.fetch_ohlcv(SYMBOL, "1m", limit=3)[-1] == last_closed

    fake.forming_candle = True
    price = last_closed[4]
    candles = client.fetch_ohlcv(SYMBOL, "1m", limit=3)
    assert candles[-2:] == [last_closed, [NOW - NOW % MINUTE, price, price, price, price, 0.0]]
    if exchange == "okx":  # OKX flags it: confirm "0" while forming
        rows = get(fake, "/api/v5/market/candles", instId="BTC-USDT-SWAP", bar="1m", limit=3)["data"]
        assert [row[8] for row in rows] == ["0", "1", "1"]


def test_funding_open_interest_and_long_short_history(clients, exchange):
    client = clients[exchange]
    funding = client.fetch_funding_rate_history(SYMBOL, since=START, limit=5)
    assert funding and all(f["symbol"] == SYMBOL and f["fundingRate"] for f in funding)
    assert all(f["timestamp"] % (8 * HOUR) == 0 and START <= f["timestamp"] <= NOW for f in funding)

    history = client.fetch_open_interest_history(SYMBOL, "5m", since=START, limit=5)
    assert history and all(oi["symbol"] == SYMBOL and oi["openInterestAmount"] > 0 for oi in history)
    assert all(oi["timestamp"] % (5 * MINUTE) == 0 and START <= oi["timestamp"] <= NOW for oi in history)

    # Bybit takes its own period names (5min, 15min, ...): ccxt passes the timeframe through, "1h" is common to all
    ratios = client.fetch_long_short_ratio_history(SYMBOL, "1h", since=START, limit=5)
    assert ratios and all(r["symbol"] == SYMBOL and r["longShortRatio"] > 0 for r in ratios)
    assert all(r["timestamp"] % HOUR == 0 and START <= r["timestamp"] <= NOW for r in ratios)


def test_taker_buy_sell_volume_in_binance_and_okx_formats(clients, fake):
    # ccxt has no unified method for it: the producers call these through ccxt's implicit API.
    hours = list(range(START, NOW - NOW % HOUR + 1, HOUR))

    # Binance: a bare list ascending from startTime, no symbol in the rows, volumes in base units as strings.
    rows = get(fake, "/futures/data/takerlongshortRatio", symbol="BTCUSDT", period="1h", startTime=START, limit=1000)
    assert [r["timestamp"] for r in rows] == hours
    assert set(rows[0]) == {"buySellRatio", "buyVol", "sellVol", "timestamp"}
    assert all(isinstance(rows[0][k], str) for k in ("buySellRatio", "buyVol", "sellVol"))
    assert all(float(r["buySellRatio"]) == pytest.approx(float(r["buyVol"]) / float(r["sellVol"]), abs=1e-4)
               for r in rows)
    assert len({r["buySellRatio"] for r in rows}) > 1  # it moves, and the same request gives the same rows
    assert get(fake, "/futures/data/takerlongshortRatio", symbol="BTCUSDT", period="1h", startTime=START) == rows[:30]
    assert len(get(fake, "/futures/data/takerlongshortRatio", symbol="BTCUSDT", period="5m", startTime=START,
                   limit=1000)) == 500  # capped at 500
    latest = clients["binance"].fapiDataGetTakerlongshortRatio({"symbol": "BTCUSDT", "period": "1h", "limit": 5})
    assert latest == rows[-5:]  # without startTime: the latest

    # OKX: the envelope, newest first, rows [ts, sellVol, buyVol], begin and end exclusive, 100 at most.
    path, swap = "/api/v5/rubik/stat/taker-volume-contract", {"instId": "BTC-USDT-SWAP", "period": "1H"}
    body = get(fake, path, **swap, limit=1000)
    assert (body["code"], body["msg"]) == ("0", "")
    assert [int(row[0]) for row in body["data"]] == hours[::-1] and len(hours) <= 100
    window = get(fake, path, **swap, begin=START, end=START + 3 * HOUR)["data"]
    assert [int(row[0]) for row in window] == [START + 2 * HOUR, START + HOUR]
    assert len(get(fake, path, instId="BTC-USDT-SWAP", period="5m", limit=1000)["data"]) == 100
    # Contracts by default (0.01 BTC each), or the base currency (unit 0), or USDT (unit 2): the same ratio.
    contracts, coins = body["data"][0], get(fake, path, **swap, unit="0")["data"][0]
    usdt = get(fake, path, **swap, unit="2")["data"][0]
    assert float(coins[1]) == pytest.approx(float(contracts[1]) * 0.01)
    for sell, buy in (contracts[1:], coins[1:], usdt[1:]):
        assert float(buy) / float(sell) == pytest.approx(float(rows[-1]["buySellRatio"]), abs=1e-4)
    assert clients["okx"].publicGetRubikStatTakerVolumeContract({**swap, "limit": 3})["data"] == body["data"][:3]
    with pytest.raises(ccxt.BadRequest):  # 51000 "Parameter unit error"
        clients["okx"].publicGetRubikStatTakerVolumeContract({**swap, "unit": "7"})


@pytest.mark.parametrize("fault", ["timeout", "http_429", "http_500", "http_503", "malformed"])
def test_injected_fault_hits_once_then_the_next_call_succeeds(clients, fake, exchange, fault):
    client, mark = clients[exchange], len(fake.requests)
    client.load_markets()
    fake.inject(exchange, KLINE_PATHS[exchange], fault)
    if fault == "malformed":
        # ccxt raises nothing for a cut-off JSON body with HTTP 200: it hands the text to the parser. Bybit and OKX
        # (and Binance with `since`) then return [], like "no candles"; Binance without `since` returns junk rows
        # parsed from the text's characters. A malformed markets response likewise loads as no markets at all.
        candles = client.fetch_ohlcv(SYMBOL, "1m", limit=5)
        assert all(candle[1] is None for candle in candles)
        assert candles == [] or exchange == "binance"
    else:
        with pytest.raises(ccxt.BaseError) as raised:
            client.fetch_ohlcv(SYMBOL, "1m", limit=5)
        assert type(raised.value) is FAULT_ERRORS[fault][exchange]
    assert client.fetch_ohlcv(SYMBOL, "1m", limit=5) == closed(exchange, "1m")[-5:]
    assert [r["fault"] for r in kline_requests(fake, exchange, mark)] == [fault, None]


def test_unknown_symbol_raises_bad_symbol(clients, fake, exchange):
    client = clients[exchange]
    client.load_markets()
    with pytest.raises(ccxt.BadSymbol):  # ccxt itself refuses a symbol missing from the markets
        client.fetch_ohlcv("NOPE/USDT:USDT", "1m")
    mark = len(fake.requests)
    # the exchange's own answer to an unknown id: -1121 (HTTP 400), retCode 10001, code 51001 -> BadSymbol
    calls = {
        "binance": lambda: client.fapiPublicGetKlines({"symbol": "NOPEUSDT", "interval": "1m"}),
        "bybit": lambda: client.publicGetV5MarketKline({"category": "linear", "symbol": "NOPEUSDT", "interval": "1"}),
        "okx": lambda: client.publicGetMarketCandles({"instId": "NOPE-USDT-SWAP", "bar": "1m"}),
    }
    with pytest.raises(ccxt.BadSymbol):
        calls[exchange]()
    assert [r["status"] for r in fake.requests[mark:]] == [{"binance": 400, "bybit": 200, "okx": 200}[exchange]]


def test_raw_pages_are_capped_and_ordered_like_the_exchanges(fake):
    rows = get(fake, "/fapi/v1/klines", symbol="BTCUSDT", interval="1m", startTime=START, limit=2000)
    assert len(rows) == 1500 and rows[0][0] == START and rows[1][0] == START + MINUTE  # ascending, from startTime
    assert rows[0][6] == START + MINUTE - 1 and all(isinstance(x, str) for x in rows[0][1:6])

    body = get(fake, "/v5/market/kline", category="linear", symbol="BTCUSDT", interval="1", start=START, limit=5000)
    assert (body["retCode"], body["retMsg"], body["result"]["category"]) == (0, "OK", "linear")
    rows = body["result"]["list"]
    assert len(rows) == 1000 and rows[-1][0] == str(START) and int(rows[0][0]) > int(rows[1][0])  # newest first

    swap = {"instId": "BTC-USDT-SWAP", "bar": "1m", "limit": 1000}
    assert len(get(fake, "/api/v5/market/history-candles", **swap)["data"]) == 100
    body = get(fake, "/api/v5/market/candles", **swap)
    rows = body["data"]
    assert body["code"] == "0" and len(rows) == 300 and int(rows[0][0]) > int(rows[1][0]) and rows[0][8] == "1"
    # market/candles only keeps the latest 1,440 bars: three days back is history-candles only
    old = {**swap, "after": START + 100 * MINUTE}
    assert get(fake, "/api/v5/market/candles", **old)["data"] == []
    assert len(get(fake, "/api/v5/market/history-candles", **old)["data"]) == 100


def test_unknown_paths_are_recorded_and_a_sleeping_handler_does_not_hold_up_stop():
    with FakeExchange({}, now_ms=lambda: NOW) as server:
        client = create_ccxt_exchange("binance", "swap", api_base_url=server.base_url, timeout_ms=CLIENT_TIMEOUT_MS)
        with pytest.raises(ccxt.ExchangeError):  # 404 {"code": -5000, ...}
            client.fapiPublicGetPremiumIndex({"symbol": "BTCUSDT"})
        assert [(r["path"], r["status"]) for r in server.unknown_requests] == [("/fapi/v1/premiumIndex", 404)]

        server.timeout_sleep_s = 60
        server.inject("binance", "time", "timeout")
        with pytest.raises(OSError):  # urllib's own timeout
            urllib.request.urlopen(server.base_url + "/fapi/v1/time", timeout=0.2)
        started = time.monotonic()
    assert time.monotonic() - started < 2
