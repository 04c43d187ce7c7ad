"""Builds the ccxt client of an exchange: the only place ccxt objects are created.

Rate limiting is always on (ccxt's own throttle: one budget per client, and we keep one
client per exchange). `api_base_url` points every REST endpoint at another host with the
same paths: the fake exchange in tests, or a proxy.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import ccxt

from common.secrets import ExchangeCredentials

# ccxt market types per our market_type: USDT-margined perpetuals are ccxt's "linear swap".
_MARKET_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "swap": {
        "binance": {"defaultType": "future", "fetchMarkets": {"types": ["linear"]}},
        "bybit": {"defaultType": "swap", "defaultSubType": "linear", "fetchMarkets": {"types": ["linear"]}},
        "okx": {"defaultType": "swap", "fetchMarkets": {"types": ["swap"]}},
    },
    "spot": {
        "binance": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}},
        "bybit": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}},
        "okx": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}},
    },
}
# Calls ccxt would otherwise make at load time that need keys or serve nothing we use.
_COMMON_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"fetchCurrencies": False, "fetchMargins": False},
    "bybit": {"fetchCurrencies": False, "enableUnifiedAccount": True, "enableUnifiedMargin": False},
    "okx": {"fetchCurrencies": False},
}


def create_ccxt_exchange(exchange_id: str, market_type: str = "swap", *, api_base_url: str | None = None,
                         credentials: ExchangeCredentials | None = None, sandbox: bool = False,
                         timeout_ms: int = 10_000) -> ccxt.Exchange:
    if exchange_id not in _COMMON_OPTIONS:
        raise ValueError(f"unsupported exchange {exchange_id!r}; supported: {', '.join(_COMMON_OPTIONS)}")
    params: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": timeout_ms,
        "options": {**_COMMON_OPTIONS[exchange_id], **_MARKET_OPTIONS[market_type][exchange_id]},
    }
    if credentials is not None:
        params.update(apiKey=credentials.api_key, secret=credentials.api_secret)
        if credentials.password:
            params["password"] = credentials.password
    client = getattr(ccxt, exchange_id)(params)
    # The raw klines carry quote volume and trade counts that ccxt's unified OHLCV drops.
    client.enableLastJsonResponse = True
    _count_non_json_responses(client)
    if sandbox:
        client.set_sandbox_mode(True)  # replaces urls['api'], so any override comes after
    if api_base_url is not None:
        client.urls["api"] = _rebase_urls(client.urls["api"], api_base_url, client.hostname)
        if exchange_id == "binance":
            _map_errors_as_on_binance(client, api_base_url)
    return client


def _map_errors_as_on_binance(client: ccxt.Exchange, base_url: str) -> None:
    """ccxt maps Binance's futures error codes (-2019 margin is insufficient, -4116 duplicate
    client id, ...) only for responses from Binance's own hosts: name the host a rebased URL
    stands for, so that a proxy or the fake exchange raises the same exceptions."""
    by_url = client.get_exceptions_by_url
    base = base_url.rstrip("/")
    hosts = {"/fapi/": "fapi", "/dapi/": "dapi", "/eapi/": "eapi", "/papi/": "papi", "/api/": "api",
             "/sapi/": "api"}

    def exceptions_by_url(url, exact_or_broad):
        if url and url.startswith(base + "/"):
            path = url[len(base):]
            host = next((h for prefix, h in hosts.items() if path.startswith(prefix)), None)
            if host is not None:
                url = f"https://{host}.binance.com{path}"
        return by_url(url, exact_or_broad)

    client.get_exceptions_by_url = exceptions_by_url


def _count_non_json_responses(client: ccxt.Exchange) -> None:
    """ccxt turns a 200 response whose body is not JSON into None and goes on (an empty
    candle list, an empty market list). Count such bodies on the client, so that the callers
    can treat them as the temporary error they are (common/exchange/market_data.py)."""
    parse_json = client.parse_json
    client.non_json_responses = 0

    def parse_json_counting_garbage(http_response):
        parsed = parse_json(http_response)
        if parsed is None and isinstance(http_response, str) and http_response.strip():
            client.non_json_responses += 1
        return parsed

    client.parse_json = parse_json_counting_garbage


def _rebase_urls(api_urls: Any, base_url: str, hostname: str | None) -> Any:
    """Keep each endpoint's path, swap its scheme and host for base_url's."""
    if isinstance(api_urls, dict):
        return {key: _rebase_urls(value, base_url, hostname) for key, value in api_urls.items()}
    url = api_urls.replace("{hostname}", hostname or "localhost")
    return base_url.rstrip("/") + urlsplit(url).path
