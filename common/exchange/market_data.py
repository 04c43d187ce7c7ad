"""Market data from one exchange through ccxt: closed klines in pages, and the inputs of
sentiment (funding rate, open interest, long/short ratio and taker buy/sell ratio history).

Every ccxt call goes through the retry policy. Only closed candles ever leave this module:
a candle that opened at t closes at t + interval, and is taken as closed only once the clock
is past that by a grace period (our clock and the exchange's are never exactly equal).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import ccxt

from common.intervals import INTERVAL_MS
from common.exchange.retry import RetryPolicy, call_with_retry

log = logging.getLogger(__name__)

# Most candles one klines request may return.
KLINE_PAGE_LIMITS = {"binance": 1000, "bybit": 1000, "okx": 300}
# OKX serves candles older than ~1440 bars from market/history-candles, which returns 100
# at most; ccxt switches endpoint by `since`, so the page must shrink with it.
OKX_HISTORY_PAGE_LIMIT = 100
OKX_RECENT_BARS = 1439
MARKET_PAGE_LIMIT = 100
# Binance keeps its open interest, long/short and taker volume history for 30 days only.
BINANCE_STATS_HISTORY_MS = 29 * 86_400_000

MARKET_METRICS = ("funding_rate", "open_interest", "long_short_ratio", "taker_buy_ratio")
_METRIC_CAPABILITY = {
    "funding_rate": "fetchFundingRateHistory",
    "open_interest": "fetchOpenInterestHistory",
    "long_short_ratio": "fetchLongShortRatioHistory",
}
# ccxt has no unified method for the taker buy/sell volume history: each exchange's own
# endpoint, through ccxt's implicit API. Binance: GET /futures/data/takerlongshortRatio
# (fapiDataGetTakerlongshortRatio); OKX: GET /api/v5/rubik/stat/taker-volume-contract
# (publicGetRubikStatTakerVolumeContract), per instrument like its open interest and long/short
# endpoints, where rubik/stat/taker-volume only has a currency's total over all its contracts.
# Bybit v5 publishes no taker volume history at all, so it has no taker_buy_ratio stream.
TAKER_BUY_RATIO_EXCHANGES = ("binance", "okx")
FUNDING_PERIOD = "8h"
FUNDING_PERIOD_MS = 8 * 3_600_000


@dataclass(frozen=True)
class Kline:
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float | None = None
    trade_count: int | None = None


@dataclass(frozen=True)
class MarketPoint:
    metric: str
    period: str
    ts_ms: int
    value: float
    value_usd: float | None = None
    long_share: float | None = None
    short_share: float | None = None


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def last_closed_open_time(now_ms: int, interval_ms: int, grace_ms: int) -> int:
    """Open time of the newest candle that is surely closed at `now_ms`."""
    return (now_ms - grace_ms) // interval_ms * interval_ms - interval_ms


class MarketDataClient:
    def __init__(self, exchange_id: str, client: ccxt.Exchange, retry: RetryPolicy, close_grace_ms: int = 3000,
                 clock: Callable[[], int] = wall_clock_ms):
        self.exchange_id = exchange_id
        self.client = client
        self.retry = retry
        self.close_grace_ms = close_grace_ms
        self.clock = clock

    def _call(self, what: str, action):
        return call_with_retry(lambda: self._checked(action), self.retry, f"{self.exchange_id}.{what}")

    def _checked(self, action):
        """Run one ccxt call and refuse it if any response was not JSON: ccxt itself quietly
        turns a garbled page into an empty list, which would read as a gap in the data."""
        garbled_before = self.client.non_json_responses
        result = action()
        if self.client.non_json_responses > garbled_before:
            body = (self.client.last_http_response or "")[:80]
            raise ccxt.BadResponse(f"{self.exchange_id} sent a body that is not JSON (last: {body!r})")
        return result

    def load_markets(self) -> None:
        # reload: a failed attempt may have cached an empty market list
        self._call("load_markets", lambda: self.client.load_markets(reload=True))

    def markets(self) -> dict[str, dict]:
        """ccxt's market list (after load_markets): unified symbol -> market."""
        return self.client.markets or {}

    def supports(self, metric: str) -> bool:
        if metric == "taker_buy_ratio":
            return self.exchange_id in TAKER_BUY_RATIO_EXCHANGES
        return bool(self.client.has.get(_METRIC_CAPABILITY[metric]))

    # -- klines -----------------------------------------------------------------------

    def kline_page(self, since_ms: int, interval_ms: int, now_ms: int) -> tuple[int, dict]:
        """The page size for a request from `since_ms`, and the params that go with it."""
        if self.exchange_id != "okx":
            return KLINE_PAGE_LIMITS[self.exchange_id], {}
        # Say which OKX endpoint to use rather than let ccxt pick it by its own clock: the
        # page size must match the endpoint, or history-candles returns only the newest 100
        # of a 300-bar window and 200 bars are lost.
        if since_ms < now_ms - OKX_RECENT_BARS * interval_ms:
            return OKX_HISTORY_PAGE_LIMIT, {"type": "HistoryCandles"}
        return KLINE_PAGE_LIMITS["okx"], {"type": "Candles"}

    def closed_kline_pages(self, unified_symbol: str, interval: str, since_ms: int) -> Iterator[list[Kline]]:
        """Pages of closed candles from `since_ms` (an open time) on, ascending, each once."""
        interval_ms = INTERVAL_MS[interval]
        now_ms = self.clock()
        newest_closed = last_closed_open_time(now_ms, interval_ms, self.close_grace_ms)
        cursor = since_ms // interval_ms * interval_ms
        while cursor <= newest_closed:
            limit, params = self.kline_page(cursor, interval_ms, now_ms)
            rows = self._call(f"fetch_ohlcv({unified_symbol},{interval})", lambda: self.client.fetch_ohlcv(
                unified_symbol, interval, since=cursor, limit=limit, params=params))
            extras = raw_kline_extras(self.exchange_id, self.client.last_json_response)
            page = [Kline(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5] or 0.0),
                          *extras.get(int(r[0]), (None, None)))
                    for r in rows if r[0] is not None and cursor <= r[0] <= newest_closed]
            page.sort(key=lambda k: k.open_time_ms)
            if page:
                yield page
                cursor = page[-1].open_time_ms + interval_ms
            else:
                # Nothing in this window: the exchange has a gap there (or no data yet).
                # Step over the window; the gap is reported downstream, never filled.
                cursor += limit * interval_ms

    # -- sentiment inputs --------------------------------------------------------------

    def market_points(self, unified_symbol: str, metric: str, period: str, since_ms: int) -> list[MarketPoint]:
        """Points of `metric` with ts >= since_ms, ascending; pages until the exchange has no more."""
        if self.exchange_id == "binance" and metric != "funding_rate":
            since_ms = max(since_ms, self.clock() - BINANCE_STATS_HISTORY_MS)
        points: list[MarketPoint] = []
        cursor = since_ms
        while True:
            page = [p for p in self._market_page(unified_symbol, metric, period, cursor) if p.ts_ms >= cursor]
            if not page:
                return points
            page.sort(key=lambda p: p.ts_ms)
            points.extend(page)
            cursor = page[-1].ts_ms + 1

    def _market_page(self, unified_symbol: str, metric: str, period: str, since_ms: int) -> list[MarketPoint]:
        what = f"{metric}({unified_symbol})"
        if metric == "funding_rate":
            rows = self._call(what, lambda: self.client.fetch_funding_rate_history(
                unified_symbol, since=since_ms, limit=MARKET_PAGE_LIMIT))
            return [MarketPoint(metric, FUNDING_PERIOD, int(r["timestamp"]), float(r["fundingRate"]))
                    for r in rows if r.get("timestamp") is not None and r.get("fundingRate") is not None]
        if metric == "open_interest":
            rows = self._call(what, lambda: self.client.fetch_open_interest_history(
                unified_symbol, period, since=since_ms, limit=MARKET_PAGE_LIMIT))
            return [MarketPoint(metric, period, int(r["timestamp"]),
                                float(r.get("openInterestAmount") or r.get("baseVolume") or 0.0),
                                _optional_float(r.get("openInterestValue") or r.get("quoteVolume")))
                    for r in rows if r.get("timestamp") is not None]
        if metric == "long_short_ratio":
            rows = self._call(what, lambda: self.client.fetch_long_short_ratio_history(
                unified_symbol, period, since=since_ms, limit=MARKET_PAGE_LIMIT))
            points = []
            for r in rows:
                ratio = _optional_float(r.get("longShortRatio"))
                if r.get("timestamp") is None or ratio is None:
                    continue
                # ratio = long accounts / short accounts, so the long share is ratio / (1 + ratio).
                points.append(MarketPoint(metric, period, int(r["timestamp"]), ratio, None,
                                          ratio / (1 + ratio), 1 / (1 + ratio)))
            return points
        if metric == "taker_buy_ratio":
            return self._taker_buy_ratio_page(unified_symbol, period, since_ms)
        raise ValueError(f"unknown market metric {metric!r}; known: {', '.join(MARKET_METRICS)}")

    def _taker_buy_ratio_page(self, unified_symbol: str, period: str, since_ms: int) -> list[MarketPoint]:
        """Taker buy volume / taker sell volume of each period from `since_ms` on (> 1: takers
        bought more than they sold), from the exchange's raw rows: ccxt has no parser for them."""
        what = f"taker_buy_ratio({unified_symbol})"
        market_id = self.client.market(unified_symbol)["id"]
        if self.exchange_id == "binance":
            # Rows ascending from startTime: {"buySellRatio", "buyVol", "sellVol", "timestamp"}.
            rows = self._call(what, lambda: self.client.fapiDataGetTakerlongshortRatio(
                {"symbol": market_id, "period": period, "startTime": since_ms, "limit": MARKET_PAGE_LIMIT}))
            return [MarketPoint("taker_buy_ratio", period, int(r["timestamp"]), float(r["buySellRatio"]))
                    for r in rows if r.get("timestamp") is not None and r.get("buySellRatio") is not None]
        if self.exchange_id == "okx":
            # OKX answers the newest `limit` rows strictly between begin and end: a window of
            # `limit` periods from since_ms gets the earliest ones, as ccxt pages its other
            # rubik statistics. OKX names periods as its candles (1h -> 1H).
            request = {"instId": market_id, "period": self.client.timeframes.get(period, period),
                       "begin": since_ms - 1, "end": since_ms + MARKET_PAGE_LIMIT * INTERVAL_MS[period],
                       "limit": MARKET_PAGE_LIMIT}
            response = self._call(what, lambda: self.client.publicGetRubikStatTakerVolumeContract(request))
            points = []
            for ts, sell_volume, buy_volume in response.get("data") or []:  # rows [ts, sellVol, buyVol]
                # A period without taker sells has no ratio: left out, never made up.
                if float(sell_volume) > 0:
                    points.append(MarketPoint("taker_buy_ratio", period, int(ts),
                                              float(buy_volume) / float(sell_volume)))
            return points
        raise ValueError(f"{self.exchange_id} has no taker buy/sell volume history")


def raw_kline_extras(exchange_id: str, raw) -> dict[int, tuple[float | None, int | None]]:
    """{open_time: (quote volume, trade count)} from the exchange's raw klines response, which
    carries what ccxt's unified [ts, o, h, l, c, v] drops. Binance: index 7 quote volume, 8
    trades; Bybit: index 6 turnover; OKX: index 7 volCcyQuote. Anything unexpected: nothing."""
    try:
        if exchange_id == "binance":
            return {int(r[0]): (float(r[7]), int(r[8])) for r in raw}
        if exchange_id == "bybit":
            return {int(r[0]): (float(r[6]), None) for r in raw["result"]["list"]}
        if exchange_id == "okx":
            return {int(r[0]): (float(r[7]), None) for r in raw["data"]}
    except (TypeError, KeyError, IndexError, ValueError):
        pass
    return {}


def _optional_float(value) -> float | None:
    return None if value is None else float(value)
