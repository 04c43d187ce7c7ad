"""A fake Binance USDⓈ-M futures / Bybit v5 (linear) / OKX v5 (SWAP) public REST API on 127.0.0.1.

It answers in each exchange's real formats (envelopes, numbers as strings, row order, page limits,
error bodies), so the real ccxt client with `urls['api']` pointed at `base_url` parses real payloads.
"""
from __future__ import annotations

import json
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
FUNDING_EVERY_MS = 8 * HOUR
FAULTS = ("timeout", "http_429", "http_500", "http_503", "malformed")

Candle = tuple[int, float, float, float, float, float]  # open_time_ms, open, high, low, close, volume


@dataclass(frozen=True)
class _Contract:
    tick: str           # price tick
    lot: str            # quantity step in base units (Binance, Bybit)
    max_qty: str
    okx_ct_val: str     # OKX swaps trade in contracts of ctVal base units
    okx_lot: str        # ... and their lot/min size counts contracts
    open_interest: float  # base units, the level the fake open interest moves around


_CONTRACTS = {
    "BTC": _Contract("0.1", "0.001", "1000", "0.01", "0.01", 80_000.0),
    "ETH": _Contract("0.01", "0.001", "10000", "0.1", "0.01", 2_000_000.0),
}
_OTHER_CONTRACT = _Contract("0.001", "0.1", "1000000", "1", "1", 10_000_000.0)
_MIN_NOTIONAL = "5"

# Each exchange's interval notation -> our canonical one (the series keys use the canonical one).
_BINANCE_INTERVALS = {iv: iv for iv in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
                                        "1d", "3d", "1w")}
_BYBIT_INTERVALS = {"1": "1m", "3": "3m", "5": "5m", "15": "15m", "30": "30m", "60": "1h", "120": "2h",
                    "240": "4h", "360": "6h", "720": "12h", "D": "1d", "W": "1w"}
# OKX's 6H and longer bars are Hong Kong-aligned unless suffixed "utc" (ccxt sends the utc ones): only those served.
_OKX_BARS = {"1m": "1m", "3m": "3m", "5m": "5m", "15m": "15m", "30m": "30m", "1H": "1h", "2H": "2h", "4H": "4h",
             "6Hutc": "6h", "12Hutc": "12h", "1Dutc": "1d", "1Wutc": "1w"}
# Periods of the open interest / long-short statistics.
_BINANCE_STAT_PERIODS = {p: p for p in ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")}
_BYBIT_STAT_PERIODS = {"5min": "5m", "15min": "15m", "30min": "30m", "1h": "1h", "4h": "4h", "1d": "1d"}
_OKX_STAT_PERIODS = {"5m": "5m", "15m": "15m", "30m": "30m", "1H": "1h", "2H": "2h", "4H": "4h", "1D": "1d",
                     "1Dutc": "1d"}


def interval_ms(interval: str) -> int:
    """Length of a canonical interval such as "1m", "4h", "1d"."""
    units = {"m": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY}
    return int(interval[:-1]) * units[interval[-1]]


def _num(value: float) -> str:
    """A float as the exchanges send it: a decimal string that parses back to the same float."""
    text = repr(float(value))
    return format(value, ".10f").rstrip("0").rstrip(".") if "e" in text else text


def _fixed(value: float, places: int = 8) -> str:
    return f"{value:.{places}f}"


def _decimals(step: str) -> int:
    return len(step.split(".")[1]) if "." in step else 0


def _between(rows: list, lo: int | None = None, hi: int | None = None, key=None) -> list:
    """Rows (ascending by time) whose time is within [lo, hi]; a missing bound is open."""
    start = 0 if lo is None else bisect_left(rows, lo, key=key)
    end = len(rows) if hi is None else bisect_right(rows, hi, key=key)
    return rows[start:end]


def _open_time(row: Candle) -> int:
    return row[0]


# Deterministic statistics, all functions of the timestamp.
def _funding_rate(ts: int) -> float:
    return 0.0001 + ((ts // FUNDING_EVERY_MS) % 7 - 3) * 0.00002


def _open_interest(contract: _Contract, ts: int) -> float:
    return contract.open_interest * (1 + ((ts // (5 * MINUTE)) % 11) / 100)


def _long_short_ratio(ts: int) -> float:
    return 0.8 + ((ts // (5 * MINUTE)) % 9) * 0.05


class _Reply(Exception):
    """Raised by an endpoint handler to answer with an error: status and JSON body."""

    def __init__(self, status: int, body: Any):
        super().__init__(status)
        self.status, self.body = status, body


class FakeExchange:
    """One local HTTP server for the three exchanges (their paths don't collide).

    series: {(exchange, canonical_symbol, interval): [[open_time_ms, o, h, l, c, v], ...]} ascending, e.g.
    ("okx", "BTCUSDT", "1m"). Only closed candles (open_time + interval <= now) are served; with
    `forming_candle` on, every klines response also has the still-forming candle of the bucket containing now.
    """

    def __init__(self, series: dict[tuple[str, str, str], Iterable[Iterable[float]]], *,
                 now_ms: Callable[[], int] | None = None, symbols: Iterable[str] = ("BTCUSDT", "ETHUSDT")):
        self.symbols = tuple(symbols)
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.forming_candle = False
        self.timeout_sleep_s = 3.0
        self.latency_s = 0.0  # added to every answer: makes a backfill slow enough to interrupt
        self.requests: list[dict[str, Any]] = []
        self.unknown_requests: list[dict[str, Any]] = []
        self._series: dict[tuple[str, str, str], list[Candle]] = {
            key: sorted((int(c[0]), *(float(x) for x in list(c)[1:6])) for c in candles)
            for key, candles in series.items()
        }
        self._faults: list[list[Any]] = []  # [exchange, path substring, fault, times left]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._apis = {api.name: api for api in (_Binance(self), _Bybit(self), _Okx(self))}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeExchange:
        self._stopping.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-exchange", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a "timeout" fault
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeExchange:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeExchange is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- test controls -------------------------------------------------------------------------

    def inject(self, exchange: str, endpoint_substring: str, fault: str, times: int = 1) -> None:
        """Answer the next `times` requests of `exchange` whose path contains the substring with `fault`."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        if exchange not in self._apis:
            raise ValueError(f"unknown exchange {exchange!r}")
        with self._lock:
            self._faults.append([exchange, endpoint_substring, fault, times])

    def pending_faults(self) -> list[tuple[str, str, str, int]]:
        with self._lock:
            return [tuple(f) for f in self._faults]

    def _take_fault(self, exchange: str, path: str) -> str | None:
        with self._lock:
            for entry in self._faults:
                if entry[0] == exchange and entry[1] in path:
                    entry[3] -= 1
                    if entry[3] <= 0:
                        self._faults.remove(entry)
                    return entry[2]
        return None

    # -- data the endpoints serve --------------------------------------------------------------

    def now(self) -> int:
        return int(self.now_ms())

    def candles(self, exchange: str, symbol: str, interval: str) -> list[Candle]:
        """The candles the exchange has now: closed ones, plus the forming one if the flag is on."""
        rows = self._series.get((exchange, symbol, interval), [])
        duration, now = interval_ms(interval), self.now()
        served = rows[:bisect_right(rows, now - duration, key=_open_time)]
        bucket = now - now % duration
        if self.forming_candle and served and served[-1][0] < bucket:
            last_close = served[-1][4]  # flat at the last close: the fake has no trades inside the bucket
            served = served + [(bucket, last_close, last_close, last_close, last_close, 0.0)]
        return served

    def price_at(self, exchange: str, symbol: str, ts: int) -> float:
        """Last close at `ts` from the finest series of the symbol (for mark prices and notional values)."""
        keys = sorted((k for k in self._series if k[:2] == (exchange, symbol) and self._series[k]),
                      key=lambda k: interval_ms(k[2]))
        if not keys:
            return 100.0
        rows = self._series[keys[0]]
        i = bisect_right(rows, ts, key=_open_time)
        return rows[i - 1][4] if i else rows[0][1]

    def stat_times(self, exchange: str, symbol: str, step_ms: int, max_age_ms: int | None = None) -> list[int]:
        """Timestamps (multiples of step, ascending, up to now) of a statistics series: funding, OI, ratios."""
        now = self.now()
        starts = [rows[0][0] for key, rows in self._series.items() if key[:2] == (exchange, symbol) and rows]
        start = min(starts) if starts else now - 30 * DAY
        if max_age_ms is not None:
            start = max(start, now - max_age_ms)
        return list(range(-(-start // step_ms) * step_ms, now - now % step_ms + 1, step_ms))

    # -- HTTP ----------------------------------------------------------------------------------

    def _api_for(self, path: str) -> _Api | None:
        if path.startswith(("/fapi/", "/futures/data/")):
            return self._apis["binance"]
        if path.startswith("/v5/"):
            return self._apis["bybit"]
        if path.startswith("/api/v5/"):
            return self._apis["okx"]
        return None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        path, params = url.path, dict(parse_qsl(url.query, keep_blank_values=True))
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))  # a body is never used
        api = self._api_for(path)
        endpoint = api.routes().get(path) if api and handler.command == "GET" else None  # public GETs only
        fault = self._take_fault(api.name, path) if endpoint else None
        content_type = "application/json"
        try:
            if endpoint is None:
                raise api.not_found(path, handler.command) if api else _Reply(404, {"error": "Not Found"})
            if fault == "http_429":
                raise api.rate_limited()
            status, body = 200, endpoint(params)
        except _Reply as reply:
            status, body = reply.status, reply.body
        payload = json.dumps(body, separators=(",", ":")).encode()
        if fault in ("http_500", "http_503"):  # as a load balancer / gateway sends them: not JSON
            status = int(fault[-3:])
            payload = b"Internal Server Error" if status == 500 else b"Service Unavailable"
            content_type = "text/plain"
        elif fault == "malformed":
            payload = payload[:max(1, len(payload) // 2)]  # a cut-off JSON document
        record = {"exchange": api.name if api else None, "method": handler.command, "path": path,
                  "params": params, "status": status, "fault": fault}
        with self._lock:
            self.requests.append(record)
            if endpoint is None:
                self.unknown_requests.append(record)
        if self.latency_s:
            self._stopping.wait(self.latency_s)
        if fault == "timeout":
            self._stopping.wait(self.timeout_sleep_s)  # the client gives up first; stop() cuts this short
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and went away


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.server.fake._serve(self)  # type: ignore[attr-defined]

    do_POST = do_PUT = do_DELETE = do_GET  # answered (404) and recorded as unknown requests

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


# -- the three exchanges --------------------------------------------------------------------------

class _Api:
    """What every exchange dialect provides: its routes, symbol ids and error bodies."""

    name = ""

    def __init__(self, fake: FakeExchange):
        self.fake = fake

    def routes(self) -> dict[str, Callable[[dict[str, str]], Any]]:
        raise NotImplementedError

    def market_id(self, symbol: str) -> str:
        return symbol

    def error(self, code: int | str, msg: str, status: int = 400) -> _Reply:
        raise NotImplementedError

    def invalid_symbol(self) -> _Reply:
        raise NotImplementedError

    def rate_limited(self) -> _Reply:
        raise NotImplementedError

    def not_found(self, path: str, method: str) -> _Reply:
        raise NotImplementedError

    def missing(self, name: str) -> _Reply:
        raise NotImplementedError

    # helpers shared by the dialects
    def symbol(self, params: dict[str, str], name: str) -> str:
        """The canonical symbol of the market id in `params[name]`; the exchange's errors if absent or unknown."""
        if not params.get(name):
            raise self.missing(name)
        for symbol in self.fake.symbols:
            if self.market_id(symbol) == params[name]:
                return symbol
        raise self.invalid_symbol()

    def int_param(self, params: dict[str, str], name: str) -> int | None:
        if params.get(name) in (None, ""):
            return None
        try:
            return int(params[name])
        except ValueError:
            raise self.error(self.bad_param_code, f"Parameter {name} error") from None

    def limit(self, params: dict[str, str], default: int, maximum: int) -> int:
        """The page size: the exchanges cap an over-large limit at their maximum rather than failing."""
        limit = self.int_param(params, "limit")
        if limit is None:
            return default
        if limit < 1:
            raise self.error(self.bad_param_code, "Parameter limit error")
        return min(limit, maximum)

    bad_param_code: int | str = 0

    def contract(self, symbol: str) -> _Contract:
        return _CONTRACTS.get(symbol.removesuffix("USDT"), _OTHER_CONTRACT)


class _Binance(_Api):
    """USDⓈ-M futures (fapi): bare JSON bodies, ascending rows, errors as {"code": -n, "msg"} with HTTP 4xx."""

    name = "binance"
    bad_param_code = -1130

    def routes(self):
        return {
            "/fapi/v1/time": self.time,
            "/fapi/v1/exchangeInfo": self.exchange_info,
            "/fapi/v1/klines": self.klines,
            "/fapi/v1/fundingRate": self.funding_rate,
            "/futures/data/openInterestHist": self.open_interest_hist,
            "/futures/data/globalLongShortAccountRatio": self.long_short_ratio,
        }

    def error(self, code, msg, status=400):
        return _Reply(status, {"code": code, "msg": msg})

    def invalid_symbol(self):
        return self.error(-1121, "Invalid symbol.")

    def rate_limited(self):
        return self.error(-1003, "Too many requests; current limit of IP(127.0.0.1) is 2400 requests per minute. "
                                 "Please use the websocket for live updates to avoid polling the API.", 429)

    def not_found(self, path, method):
        return self.error(-5000, f"Path {path}, Method {method} is invalid", 404)

    def missing(self, name):
        return self.error(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")

    @staticmethod
    def page(rows: list, params: dict[str, str], limit: int) -> list:
        # Binance pages forward from startTime when given, else returns the latest rows (up to endTime).
        return rows[:limit] if params.get("startTime") else rows[-limit:]

    def time(self, params):
        return {"serverTime": self.fake.now()}

    def exchange_info(self, params):
        return {
            "timezone": "UTC",
            "serverTime": self.fake.now(),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [self.symbol_info(symbol) for symbol in self.fake.symbols],
        }

    def symbol_info(self, symbol: str) -> dict[str, Any]:
        c = self.contract(symbol)
        return {
            "symbol": symbol, "pair": symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000", "baseAsset": symbol.removesuffix("USDT"), "quoteAsset": "USDT",
            "marginAsset": "USDT", "pricePrecision": _decimals(c.tick), "quantityPrecision": _decimals(c.lot),
            "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [],
            "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": c.tick, "maxPrice": "4529764", "tickSize": c.tick},
                {"filterType": "LOT_SIZE", "minQty": c.lot, "maxQty": c.max_qty, "stepSize": c.lot},
                {"filterType": "MARKET_LOT_SIZE", "minQty": c.lot, "maxQty": c.max_qty, "stepSize": c.lot},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": _MIN_NOTIONAL},  # fapi names it "notional"
                {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                 "multiplierDecimal": "4"},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                           "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            "permissionSets": ["GRID", "COPY"],
        }

    def klines(self, params):
        symbol = self.symbol(params, "symbol")
        interval = _BINANCE_INTERVALS.get(params.get("interval", ""))
        if interval is None:
            raise self.error(-1120, "Invalid interval.")
        limit = self.limit(params, default=500, maximum=1500)
        rows = _between(self.fake.candles(self.name, symbol, interval), self.int_param(params, "startTime"),
                        self.int_param(params, "endTime"), key=_open_time)
        duration = interval_ms(interval)
        return [[t, _num(o), _num(h), _num(l), _num(c), _num(v), t + duration - 1, _fixed(v * c),
                 int(v * 10) + 1, _num(round(v / 2, 8)), _fixed(v * c / 2), "0"]
                for t, o, h, l, c, v in self.page(rows, params, limit)]

    def funding_rate(self, params):
        # Without a symbol Binance returns every symbol's history.
        symbols = [self.symbol(params, "symbol")] if params.get("symbol") else list(self.fake.symbols)
        limit = self.limit(params, default=100, maximum=1000)
        rows = sorted((ts, symbol) for symbol in symbols
                      for ts in self.fake.stat_times(self.name, symbol, FUNDING_EVERY_MS))
        rows = _between(rows, self.int_param(params, "startTime"), self.int_param(params, "endTime"),
                        key=lambda r: r[0])
        return [{"symbol": symbol, "fundingTime": ts, "fundingRate": _fixed(_funding_rate(ts)),
                 "markPrice": _fixed(self.fake.price_at(self.name, symbol, ts))}
                for ts, symbol in self.page(rows, params, limit)]

    def stat_rows(self, params) -> tuple[str, list[int]]:
        """Symbol and timestamps of an openInterestHist / long-short request (only the last 30 days exist)."""
        symbol = self.symbol(params, "symbol")
        if not params.get("period"):
            raise self.missing("period")
        period = _BINANCE_STAT_PERIODS.get(params["period"])
        if period is None:
            raise self.error(-1130, "Data sent for parameter 'period' is not valid.")
        limit = self.limit(params, default=30, maximum=500)
        times = self.fake.stat_times(self.name, symbol, interval_ms(period), max_age_ms=30 * DAY)
        times = _between(times, self.int_param(params, "startTime"), self.int_param(params, "endTime"))
        return symbol, self.page(times, params, limit)

    def open_interest_hist(self, params):
        symbol, times = self.stat_rows(params)
        c = self.contract(symbol)
        return [{"symbol": symbol, "sumOpenInterest": _fixed(_open_interest(c, ts)),
                 "sumOpenInterestValue": _fixed(_open_interest(c, ts) * self.fake.price_at(self.name, symbol, ts)),
                 "timestamp": ts} for ts in times]

    def long_short_ratio(self, params):
        symbol, times = self.stat_rows(params)
        rows = []
        for ts in times:
            ratio = _long_short_ratio(ts)
            rows.append({"symbol": symbol, "longAccount": _fixed(ratio / (1 + ratio), 4),
                         "longShortRatio": _fixed(ratio, 4), "shortAccount": _fixed(1 / (1 + ratio), 4),
                         "timestamp": ts})
        return rows


class _Bybit(_Api):
    """v5: HTTP 200 with {"retCode", "retMsg", "result", "retExtInfo", "time"}, even for errors; rows newest first."""

    name = "bybit"
    bad_param_code = 10001

    def routes(self):
        return {
            "/v5/market/time": self.time,
            "/v5/market/instruments-info": self.instruments_info,
            "/v5/market/kline": self.kline,
            "/v5/market/funding/history": self.funding_history,
            "/v5/market/open-interest": self.open_interest,
            "/v5/market/account-ratio": self.account_ratio,
        }

    def ok(self, result: dict[str, Any]) -> dict[str, Any]:
        return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": self.fake.now()}

    def error(self, code, msg, status=200):
        return _Reply(status, {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {},
                               "time": self.fake.now()})

    def invalid_symbol(self):
        return self.error(10001, "Not supported symbols")

    def rate_limited(self):
        return self.error(10006, "Too many visits!")  # per-UID limit: HTTP 200, retCode 10006

    def not_found(self, path, method):
        return _Reply(404, {"retCode": 10404, "retMsg": f"Path {path} not found", "result": {}, "retExtInfo": {},
                            "time": self.fake.now()})

    def missing(self, name):
        return self.error(10001, f"params error: {name} is required")

    def linear_symbol(self, params, default_category: str | None = None) -> str:
        """Only the linear category is served: any other one has none of our symbols."""
        category = params.get("category") or default_category
        if not category:
            raise self.missing("category")
        if category != "linear":
            raise self.invalid_symbol()
        return self.symbol(params, "symbol")

    def newest(self, times: list[int], params, default: int, maximum: int) -> tuple[list[int], str]:
        """Newest-first page of [startTime, endTime] (its newest rows) and the cursor of the older rest."""
        limit = self.limit(params, default, maximum)
        hi = self.int_param(params, "endTime")
        if params.get("cursor"):  # our cursor: the oldest time already returned
            hi = min(x for x in (hi, self.int_param(params, "cursor") - 1) if x is not None)
        times = _between(times, self.int_param(params, "startTime"), hi)
        page = times[-limit:]
        return page[::-1], (str(page[0]) if len(times) > limit else "")

    def time(self, params):
        now = self.fake.now()
        return self.ok({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)})

    def instruments_info(self, params):
        if not params.get("category"):
            raise self.missing("category")
        symbols = [s for s in self.fake.symbols if params.get("symbol") in (None, s)]
        if params["category"] != "linear" or params.get("status", "Trading") != "Trading":
            symbols = []
        return self.ok({"category": params["category"], "list": [self.instrument(s) for s in symbols],
                        "nextPageCursor": ""})

    def instrument(self, symbol: str) -> dict[str, Any]:
        c = self.contract(symbol)
        return {
            "symbol": symbol, "contractType": "LinearPerpetual", "status": "Trading",
            "baseCoin": symbol.removesuffix("USDT"), "quoteCoin": "USDT", "launchTime": "1585526400000",
            "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": str(_decimals(c.tick)),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": c.tick, "maxPrice": "1999999.80", "tickSize": c.tick},
            "lotSizeFilter": {"maxOrderQty": c.max_qty, "minOrderQty": c.lot, "qtyStep": c.lot,
                              "postOnlyMaxOrderQty": c.max_qty, "maxMktOrderQty": c.max_qty,
                              "minNotionalValue": _MIN_NOTIONAL},
            "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": "USDT", "copyTrading": "both",
            "upperFundingRate": "0.00375", "lowerFundingRate": "-0.00375", "isPreListing": False,
            "preListingInfo": None, "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
            "displayName": "",
        }

    def kline(self, params):
        symbol = self.linear_symbol(params, default_category="linear")
        interval = _BYBIT_INTERVALS.get(params.get("interval", ""))
        if interval is None:
            raise self.error(10001, "Invalid period!")
        limit = self.limit(params, default=200, maximum=1000)
        duration = interval_ms(interval)
        start, end = self.int_param(params, "start"), self.int_param(params, "end")
        # `start` selects the candle that contains it; with `start` the page runs forward from there.
        rows = _between(self.fake.candles(self.name, symbol, interval),
                        None if start is None else start - duration + 1, end, key=_open_time)
        rows = rows[:limit] if start is not None else rows[-limit:]
        return self.ok({"symbol": symbol, "category": "linear", "list": [
            [str(t), _num(o), _num(h), _num(l), _num(c), _num(v), _fixed(v * c)] for t, o, h, l, c, v in rows[::-1]
        ]})

    def funding_history(self, params):
        symbol = self.linear_symbol(params)
        if params.get("startTime") and not params.get("endTime"):
            raise self.error(10001, "params error: endTime is required when startTime is passed")
        times, _ = self.newest(self.fake.stat_times(self.name, symbol, FUNDING_EVERY_MS), params, 200, 200)
        return self.ok({"category": "linear", "list": [
            {"symbol": symbol, "fundingRate": _fixed(_funding_rate(ts)), "fundingRateTimestamp": str(ts)}
            for ts in times]})

    def open_interest(self, params):
        symbol = self.linear_symbol(params)
        if not params.get("intervalTime"):
            raise self.missing("intervalTime")
        period = _BYBIT_STAT_PERIODS.get(params["intervalTime"])
        if period is None:
            raise self.error(10001, "params error: intervalTime invalid")
        times = self.fake.stat_times(self.name, symbol, interval_ms(period))
        times, cursor = self.newest(times, params, 50, 200)
        c = self.contract(symbol)
        return self.ok({"symbol": symbol, "category": "linear", "nextPageCursor": cursor, "list": [
            {"openInterest": _fixed(_open_interest(c, ts)), "timestamp": str(ts)} for ts in times]})

    def account_ratio(self, params):
        symbol = self.linear_symbol(params)
        if not params.get("period"):
            raise self.missing("period")
        period = _BYBIT_STAT_PERIODS.get(params["period"])
        if period is None:
            raise self.error(10001, "params error: period invalid")
        times, cursor = self.newest(self.fake.stat_times(self.name, symbol, interval_ms(period)), params, 50, 500)
        rows = []
        for ts in times:
            buy = round(_long_short_ratio(ts) / (1 + _long_short_ratio(ts)), 4)
            rows.append({"symbol": symbol, "buyRatio": _fixed(buy, 4), "sellRatio": _fixed(1 - buy, 4),
                         "timestamp": str(ts)})
        return self.ok({"list": rows, "nextPageCursor": cursor})


class _Okx(_Api):
    """v5: {"code": "0", "msg": "", "data": [...]}, everything a string, rows newest first.

    Paging is by `after` (rows older than it) and `before` (rows newer than it), both exclusive; a page
    is always the newest `limit` rows between them.
    """

    name = "okx"
    bad_param_code = "51000"

    def routes(self):
        return {
            "/api/v5/public/time": self.time,
            "/api/v5/public/instruments": self.instruments,
            "/api/v5/market/candles": self.candles,
            "/api/v5/market/history-candles": self.history_candles,
            "/api/v5/public/funding-rate-history": self.funding_rate_history,
            "/api/v5/rubik/stat/contracts/open-interest-history": self.open_interest_history,
            "/api/v5/rubik/stat/contracts/long-short-account-ratio-contract": self.long_short_ratio,
        }

    def market_id(self, symbol):
        return f"{symbol.removesuffix('USDT')}-USDT-SWAP"

    @staticmethod
    def ok(data: list) -> dict[str, Any]:
        return {"code": "0", "msg": "", "data": data}

    def error(self, code, msg, status=200):
        return _Reply(status, {"code": str(code), "msg": msg, "data": []})

    def invalid_symbol(self):
        return self.error("51001", "Instrument ID does not exist")

    def rate_limited(self):
        return self.error("50011", "Too Many Requests", 429)

    def not_found(self, path, method):
        return _Reply(404, {"code": "404", "msg": "Not Found", "data": []})

    def missing(self, name):
        return self.error("50014", f"Parameter {name} can not be empty", 400)

    def newest(self, times: list[int], params, lower: str, upper: str, default: int, maximum: int) -> list[int]:
        """The newest `limit` of the times strictly between params[lower] and params[upper], newest first."""
        limit = self.limit(params, default, maximum)
        lo, hi = self.int_param(params, lower), self.int_param(params, upper)
        times = _between(times, None if lo is None else lo + 1, None if hi is None else hi - 1)
        return times[-limit:][::-1]

    def time(self, params):
        return self.ok([{"ts": str(self.fake.now())}])

    def instruments(self, params):
        if not params.get("instType"):
            raise self.missing("instType")
        symbols = [s for s in self.fake.symbols if params.get("instId") in (None, self.market_id(s))]
        if params["instType"] != "SWAP":
            symbols = []
        return self.ok([self.instrument(s, n) for n, s in enumerate(symbols, start=10_000)])

    def instrument(self, symbol: str, code: int) -> dict[str, Any]:
        c, base = self.contract(symbol), symbol.removesuffix("USDT")
        return {
            "alias": "", "auctionEndTime": "", "baseCcy": "", "category": "1", "contTdSwTime": "", "ctMult": "1",
            "ctType": "linear", "ctVal": c.okx_ct_val, "ctValCcy": base, "expTime": "", "futureSettlement": False,
            "instFamily": f"{base}-USDT", "instId": self.market_id(symbol), "instIdCode": code, "instType": "SWAP",
            "lever": "100", "listTime": "1573557408000", "lotSz": c.okx_lot, "maxIcebergSz": "100000000",
            "maxLmtAmt": "20000000", "maxLmtSz": "100000000", "maxMktAmt": "", "maxMktSz": "12000",
            "maxStopSz": "12000", "maxTriggerSz": "100000000", "maxTwapSz": "100000000", "minSz": c.okx_lot,
            "openType": "", "optType": "", "quoteCcy": "", "ruleType": "normal", "settleCcy": "USDT",
            "state": "live", "stk": "", "tickSz": c.tick, "uly": f"{base}-USDT",
        }

    def candles(self, params, history: bool = False):
        symbol = self.symbol(params, "instId")
        interval = _OKX_BARS.get(params.get("bar", "1m"))
        if interval is None:
            raise self.error("51000", "Parameter bar error")
        duration, now = interval_ms(interval), self.fake.now()
        rows = self.fake.candles(self.name, symbol, interval)
        if not history:  # market/candles only has the latest 1,440 bars; older ones are in history-candles
            rows = _between(rows, now - now % duration - 1439 * duration, None, key=_open_time)
        limit = self.limit(params, default=100, maximum=100 if history else 300)
        lo, hi = self.int_param(params, "before"), self.int_param(params, "after")
        rows = _between(rows, None if lo is None else lo + 1, None if hi is None else hi - 1, key=_open_time)
        ct_val = float(self.contract(symbol).okx_ct_val)
        return self.ok([
            [str(t), _num(o), _num(h), _num(l), _num(c), _num(round(v / ct_val, 8)), _num(v), _fixed(v * c),
             "0" if t + duration > now else "1"]  # confirm: 0 while the candle is still forming
            for t, o, h, l, c, v in rows[-limit:][::-1]])

    def history_candles(self, params):
        return self.candles(params, history=True)

    def funding_rate_history(self, params):
        symbol = self.symbol(params, "instId")
        times = self.fake.stat_times(self.name, symbol, FUNDING_EVERY_MS, max_age_ms=92 * DAY)  # ~3 months kept
        rows = []
        for ts in self.newest(times, params, "before", "after", 400, 400):
            rate = _fixed(_funding_rate(ts))
            rows.append({"formulaType": "noRate", "fundingRate": rate, "fundingTime": str(ts),
                         "instId": self.market_id(symbol), "instType": "SWAP", "method": "current_period",
                         "realizedRate": rate})
        return self.ok(rows)

    def stat_times(self, params) -> tuple[str, list[int]]:
        """Symbol and times of a rubik statistics request: `begin`/`end` exclusive, latest 1,440 entries kept."""
        symbol = self.symbol(params, "instId")
        period = _OKX_STAT_PERIODS.get(params.get("period", "5m"))
        if period is None:
            raise self.error("51000", "Parameter period error")
        times = self.fake.stat_times(self.name, symbol, interval_ms(period))[-1440:]
        return symbol, self.newest(times, params, "begin", "end", 100, 100)

    def open_interest_history(self, params):
        symbol, times = self.stat_times(params)
        c = self.contract(symbol)
        rows = []
        for ts in times:
            base = _open_interest(c, ts)
            rows.append([str(ts), _fixed(base / float(c.okx_ct_val), 2), _fixed(base, 4),
                         _fixed(base * self.fake.price_at(self.name, symbol, ts), 2)])
        return self.ok(rows)

    def long_short_ratio(self, params):
        _, times = self.stat_times(params)
        return self.ok([[str(ts), _fixed(_long_short_ratio(ts), 4)] for ts in times])
