"""Application config: conf/app.toml, overridden by CRYPTOBOT_<SECTION>__<KEY> variables.

Loaded and validated once at start-up by every process; a bad value fails loudly with the
key's name and what is allowed. Trading parameters live in gold.trading_config instead
(common/trading_config.py), secrets in the environment (common/secrets.py).
"""
from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from common.intervals import INTERVAL_MS
from common.symbols import SymbolMap

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "conf" / "app.toml"
ENV_PREFIX = "CRYPTOBOT_"

SUPPORTED_EXCHANGES = ("binance", "bybit", "okx")


class ConfigError(ValueError):
    """A configuration value is missing or outside what is allowed."""


@dataclass(frozen=True)
class PathsConfig:
    data_dir: Path


@dataclass(frozen=True)
class LakeConfig:
    root: str
    checkpoint_root: str

    def table_path(self, database: str, table: str) -> str:
        return f"{self.root.rstrip('/')}/{database}/{table}"

    def checkpoint_path(self, query_name: str) -> str:
        return f"{self.checkpoint_root.rstrip('/')}/{query_name}"


@dataclass(frozen=True)
class SparkConfig:
    master: str
    shuffle_partitions: int


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str
    topic_prefix: str
    controller_port: int
    broker_heap_mb: int
    topic_partitions: int
    topic_replication_factor: int
    topic_retention_ms: int

    @property
    def broker_host(self) -> str:
        return self.bootstrap_servers.split(",")[0].rsplit(":", 1)[0]

    @property
    def broker_port(self) -> int:
        return int(self.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])


@dataclass(frozen=True)
class ExchangesConfig:
    enabled: tuple[str, ...]
    market_type: str
    symbols: tuple[str, ...]
    intervals: tuple[str, ...]
    symbol_map: SymbolMap


@dataclass(frozen=True)
class StreamingConfig:
    trigger_interval_seconds: int
    max_offsets_per_trigger: int
    position_manager_interval_seconds: int
    trading_jobs: str  # in_process | spark_submit | off (streaming/trading_scheduler.py)
    job_submit_command: str | None  # the spark-submit prefix for spark_submit; None = this machine's


@dataclass(frozen=True)
class ProducerConfig:
    poll_interval_seconds: int
    close_grace_ms: int
    initial_lookback_bars: int
    retry_max_attempts: int
    retry_base_delay_ms: int
    retry_max_delay_ms: int
    request_timeout_ms: int
    market_data: bool
    market_period: str
    api_base_url: str | None
    sandbox: bool


@dataclass(frozen=True)
class ExecutionConfig:
    """How the trading jobs reach the exchange when paper_trading is false (gold.trading_config)."""
    api_base_url: str | None  # another host with the exchange's paths: a proxy, or the fake exchange in tests
    request_timeout_ms: int
    retry_max_attempts: int


ANALYTICS_KEYS = {  # key -> (type, low, high)
    "swing_strength": (int, 1, 100), "atr_period": (int, 1, 1_000), "warning_atr": (float, 0.0, 10.0),
    "profile_window_bars": (int, 10, 100_000), "profile_bins": (int, 2, 1_000),
    "profile_step_bars": (int, 1, 100_000), "cluster_atr": (float, 0.0, 10.0),
    "max_active_zones": (int, 1, 1_000),
}
SENTIMENT_KEYS = {"funding_window": (int, 2, 10_000), "change_window": (int, 1, 10_000)}


@dataclass(frozen=True)
class AnalyticsConfig:
    defaults: Mapping[str, Any]
    by_interval: Mapping[str, Mapping[str, Any]]
    funding_window: int
    change_window: int


@dataclass(frozen=True)
class SignalsConfig:
    max_break_age_bars: int
    lookback_bars: int


@dataclass(frozen=True)
class AppConfig:
    paths: PathsConfig
    lake: LakeConfig
    spark: SparkConfig
    kafka: KafkaConfig
    exchanges: ExchangesConfig
    streaming: StreamingConfig
    producer: ProducerConfig
    analytics: AnalyticsConfig
    signals: SignalsConfig
    execution: ExecutionConfig
    source: str

    def klines_topic(self, exchange: str) -> str:
        return f"{self.kafka.topic_prefix}klines.{exchange}"

    def market_topic(self, exchange: str) -> str:
        return f"{self.kafka.topic_prefix}market.{exchange}"

    def topics(self) -> list[str]:
        return [
            topic
            for exchange in self.exchanges.enabled
            for topic in (self.klines_topic(exchange), self.market_topic(exchange))
        ]


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> AppConfig:
    """Read the TOML file (CRYPTOBOT_CONFIG or conf/app.toml), apply env overrides, validate."""
    env = os.environ if env is None else env
    config_path = Path(path or env.get(f"{ENV_PREFIX}CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        raw = tomllib.loads(config_path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {config_path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {config_path} is not valid TOML: {err}") from None
    _apply_env_overrides(raw, env)
    return _build(raw, str(config_path))


def _apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        if section not in raw or key not in raw[section]:
            raise ConfigError(f"environment variable {name} names no config key [{section}] {key}")
        current = raw[section][key]
        if isinstance(current, dict):
            raise ConfigError(f"environment variable {name}: [{section}.{key}] is a table, set in the config file")
        raw[section][key] = _parse_env_value(name, value, current)


def _parse_env_value(name: str, value: str, current: Any) -> Any:
    if isinstance(current, list):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(current, bool):
        if value.lower() not in ("true", "false", "1", "0"):
            raise ConfigError(f"{name}={value!r}: expected true or false")
        return value.lower() in ("true", "1")
    if isinstance(current, int):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r}: expected a whole number") from None
    return value


def _symbol_overrides(raw: dict[str, Any], symbols: tuple[str, ...], market_type: str) -> dict[str, dict[str, str]]:
    """[exchanges.symbol_map.<exchange>]: canonical symbol = ccxt symbol, where an exchange
    does not follow the naming convention."""
    table = raw.get("exchanges", {}).get("symbol_map", {})
    overrides: dict[str, dict[str, str]] = {}
    for exchange, mapping in table.items():
        where = f"[exchanges.symbol_map.{exchange}]"
        if exchange not in SUPPORTED_EXCHANGES:
            raise ConfigError(f"{where}: unknown exchange; allowed: {', '.join(SUPPORTED_EXCHANGES)}")
        if not isinstance(mapping, dict):
            raise ConfigError(f"{where}: must be a table of SYMBOL = \"ccxt symbol\"")
        for symbol, unified in mapping.items():
            if symbol not in symbols:
                raise ConfigError(f"{where} {symbol}: not one of [exchanges] symbols")
            pair, colon, settle = unified.partition(":") if isinstance(unified, str) else ("", "", "")
            base, slash, quote = pair.partition("/")
            if not (base and slash and quote) or (market_type == "swap") != bool(colon and settle):
                example = "BASE/USDT:USDT" if market_type == "swap" else "BASE/USDT"
                raise ConfigError(f"{where} {symbol} = {unified!r}: expected a ccxt {market_type} symbol like "
                                  f"{example!r}")
            overrides.setdefault(exchange, {})[symbol] = unified
    return overrides


def _analytics(raw: dict[str, Any], intervals: tuple[str, ...]) -> AnalyticsConfig:
    section = raw.get("analytics")
    if not isinstance(section, dict):
        raise ConfigError("missing config section [analytics]")

    def checked(where: str, key: str, value: Any, rules: dict) -> Any:
        kind, low, high = rules[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            raise ConfigError(f"{where} {key} = {value!r}: must be a {'whole ' if kind is int else ''}number")
        if not low <= value <= high:
            raise ConfigError(f"{where} {key} = {value!r}: must be between {low} and {high}")
        return kind(value)

    rules = {**ANALYTICS_KEYS, **SENTIMENT_KEYS}
    values = {}
    for key in rules:
        if key not in section:
            raise ConfigError(f"missing config key [analytics] {key}")
        values[key] = checked("[analytics]", key, section[key], rules)
    unknown = set(section) - set(rules) - {"intervals"}
    if unknown:
        raise ConfigError(f"[analytics]: unknown keys {sorted(unknown)}")
    by_interval = {}
    for interval, table in section.get("intervals", {}).items():
        where = f"[analytics.intervals.{interval}]"
        if interval not in intervals:
            raise ConfigError(f"{where}: not one of [exchanges] intervals")
        if not isinstance(table, dict) or set(table) - set(ANALYTICS_KEYS):
            raise ConfigError(f"{where}: only {', '.join(ANALYTICS_KEYS)}")
        by_interval[interval] = {k: checked(where, k, v, ANALYTICS_KEYS) for k, v in table.items()}
    defaults = {k: values[k] for k in ANALYTICS_KEYS}
    return AnalyticsConfig(defaults, by_interval, values["funding_window"], values["change_window"])


def _resolve_local(path_or_uri: str) -> str:
    """Relative local paths are taken from the project root; URIs are kept as they are."""
    if "://" in path_or_uri or path_or_uri.startswith("/"):
        return path_or_uri
    return str(PROJECT_ROOT / path_or_uri)


# Tables read whole by functions of their own, which name their own unknown keys.
_SELF_CHECKED = {("exchanges", "symbol_map"), ("analytics", None)}


def _refuse_unknown_keys(raw: dict[str, Any], read: set[tuple[str, str]]) -> None:
    """A key no code reads is a typo or a leftover that would silently change nothing: refused, named."""
    known: dict[str, set[str]] = {}
    for section, key in read | _SELF_CHECKED:
        known.setdefault(section, set()).add(key)
    for section, table in raw.items():
        if section not in known:
            kind = "section" if isinstance(table, dict) else "key (outside any section)"
            raise ConfigError(f"unknown config {kind} [{section}]; known sections: {', '.join(sorted(known))}")
        if None in known[section]:
            continue
        unknown = sorted(set(table) - known[section])
        if unknown:
            raise ConfigError(f"unknown config key [{section}] {unknown[0]}" +
                              (f" (and {', '.join(unknown[1:])})" if unknown[1:] else "") +
                              f"; known keys of [{section}]: {', '.join(sorted(known[section]))}")


def _build(raw: dict[str, Any], source: str) -> AppConfig:
    get = _Getter(raw)
    config = _build_known(raw, source, get)
    _refuse_unknown_keys(raw, get.read)
    return config


def _build_known(raw: dict[str, Any], source: str, get: "_Getter") -> AppConfig:
    exchanges = tuple(get.text_list("exchanges", "enabled", allowed=SUPPORTED_EXCHANGES))
    intervals = tuple(get.text_list("exchanges", "intervals", allowed=tuple(INTERVAL_MS)))
    symbols = tuple(get.text_list("exchanges", "symbols"))
    for symbol in symbols:
        if not (symbol.isalnum() and symbol.isupper() and symbol.endswith("USDT")):
            raise ConfigError(
                f"[exchanges] symbols: {symbol!r} is not a canonical symbol like 'BTCUSDT'"
            )
    market_type = get.text("exchanges", "market_type")
    if market_type not in ("swap", "spot"):
        raise ConfigError(f"[exchanges] market_type = {market_type!r}: must be 'swap' or 'spot'")
    bootstrap = get.text("kafka", "bootstrap_servers")
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(
                f"[kafka] bootstrap_servers = {bootstrap!r}: each server must be host:port"
            )
    return AppConfig(
        paths=PathsConfig(data_dir=Path(_resolve_local(get.text("paths", "data_dir")))),
        lake=LakeConfig(
            root=_resolve_local(get.text("lake", "root")),
            checkpoint_root=_resolve_local(get.text("lake", "checkpoint_root")),
        ),
        spark=SparkConfig(
            master=get.text("spark", "master"),
            shuffle_partitions=get.whole_number("spark", "shuffle_partitions", 1, 10_000),
        ),
        kafka=KafkaConfig(
            bootstrap_servers=bootstrap,
            topic_prefix=get.topic_prefix("kafka", "topic_prefix"),
            controller_port=get.whole_number("kafka", "controller_port", 1, 65_535),
            broker_heap_mb=get.whole_number("kafka", "broker_heap_mb", 128, 512),
            topic_partitions=get.whole_number("kafka", "topic_partitions", 1, 1_000),
            topic_replication_factor=get.whole_number("kafka", "topic_replication_factor", 1, 10),
            topic_retention_ms=get.whole_number("kafka", "topic_retention_ms", -1, 2**62),
        ),
        exchanges=ExchangesConfig(
            enabled=exchanges, market_type=market_type, symbols=symbols, intervals=intervals,
            symbol_map=SymbolMap(market_type, _symbol_overrides(raw, symbols, market_type)),
        ),
        streaming=StreamingConfig(
            trigger_interval_seconds=get.whole_number("streaming", "trigger_interval_seconds", 1, 86_400),
            max_offsets_per_trigger=get.whole_number("streaming", "max_offsets_per_trigger", 1, 10**9),
            position_manager_interval_seconds=get.whole_number("streaming", "position_manager_interval_seconds", 5,
                                                               86_400),
            trading_jobs=get.choice("streaming", "trading_jobs", ("in_process", "spark_submit", "off")),
            job_submit_command=get.optional_text("streaming", "job_submit_command"),
        ),
        producer=ProducerConfig(
            poll_interval_seconds=get.whole_number("producer", "poll_interval_seconds", 1, 3_600),
            close_grace_ms=get.whole_number("producer", "close_grace_ms", 0, 300_000),
            initial_lookback_bars=get.whole_number("producer", "initial_lookback_bars", 1, 1_000_000),
            retry_max_attempts=get.whole_number("producer", "retry_max_attempts", 1, 100),
            retry_base_delay_ms=get.whole_number("producer", "retry_base_delay_ms", 1, 600_000),
            retry_max_delay_ms=get.whole_number("producer", "retry_max_delay_ms", 1, 3_600_000),
            request_timeout_ms=get.whole_number("producer", "request_timeout_ms", 100, 600_000),
            market_data=get.flag("producer", "market_data"),
            market_period=get.choice("producer", "market_period", ("5m", "15m", "30m", "1h", "4h", "1d")),
            api_base_url=get.base_url("producer", "api_base_url"),
            sandbox=get.flag("producer", "sandbox"),
        ),
        analytics=_analytics(raw, intervals),
        signals=SignalsConfig(
            max_break_age_bars=get.whole_number("signals", "max_break_age_bars", 1, 10_000),
            lookback_bars=get.whole_number("signals", "lookback_bars", 10, 100_000),
        ),
        execution=ExecutionConfig(
            api_base_url=get.base_url("execution", "api_base_url"),
            request_timeout_ms=get.whole_number("execution", "request_timeout_ms", 100, 600_000),
            retry_max_attempts=get.whole_number("execution", "retry_max_attempts", 1, 100),
        ),
        source=source,
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Getter:
    """Typed access to the raw TOML dict, naming the key in every error."""

    def __init__(self, raw: dict[str, Any]):
        self.raw = raw
        self.read: set[tuple[str, str]] = set()  # every (section, key) asked for

    def _value(self, section: str, key: str) -> Any:
        self.read.add((section, key))
        try:
            return self.raw[section][key]
        except KeyError:
            raise ConfigError(f"missing config key [{section}] {key}") from None

    def text(self, section: str, key: str) -> str:
        value = self._value(section, key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"[{section}] {key} = {value!r}: must be a non-empty string")
        return value.strip()

    def whole_number(self, section: str, key: str, low: int, high: int) -> int:
        value = self._value(section, key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"[{section}] {key} = {value!r}: must be a whole number")
        if not low <= value <= high:
            raise ConfigError(f"[{section}] {key} = {value}: must be between {low} and {high}")
        return value

    def optional_text(self, section: str, key: str) -> str | None:
        value = self._value(section, key)
        if not isinstance(value, str):
            raise ConfigError(f"[{section}] {key} = {value!r}: must be a string")
        return value.strip() or None

    def base_url(self, section: str, key: str) -> str | None:
        """Another host for an exchange's REST paths, or None. https only, but for this machine's
        loopback (the tests' fake exchange): signed requests and their answers must not cross a
        network in the clear."""
        value = self.optional_text(section, key)
        if value is None:
            return None
        try:
            url = urlsplit(value)
            host = url.hostname
        except ValueError:
            url, host = None, None
        if url is None or url.scheme not in ("http", "https") or not host:
            raise ConfigError(f"[{section}] {key} = {value!r}: must be a URL like 'https://host[:port][/path]'")
        if url.username or url.password:
            raise ConfigError(f"[{section}] {key}: must not hold a user or password (the value is not shown)")
        if url.query or url.fragment:
            raise ConfigError(f"[{section}] {key} = {value!r}: must have no query or fragment")
        if url.scheme != "https" and not _is_loopback(host):
            raise ConfigError(f"[{section}] {key} = {value!r}: must be https; http only to a loopback host "
                              f"(127.0.0.1, localhost, ::1)")
        return value

    def topic_prefix(self, section: str, key: str) -> str:
        value = self._value(section, key)
        if not isinstance(value, str) or (value and not all(c.isalnum() or c in "._-" for c in value)):
            raise ConfigError(f"[{section}] {key} = {value!r}: only letters, digits, '.', '_' and '-'")
        return value

    def choice(self, section: str, key: str, allowed: tuple[str, ...]) -> str:
        value = self.text(section, key)
        if value not in allowed:
            raise ConfigError(f"[{section}] {key} = {value!r}: allowed: {', '.join(allowed)}")
        return value

    def flag(self, section: str, key: str) -> bool:
        value = self._value(section, key)
        if not isinstance(value, bool):
            raise ConfigError(f"[{section}] {key} = {value!r}: must be true or false")
        return value

    def text_list(self, section: str, key: str, allowed: tuple[str, ...] | None = None) -> list[str]:
        value = self._value(section, key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"[{section}] {key} = {value!r}: must be a non-empty list of strings")
        if allowed is not None:
            unknown = [v for v in value if v not in allowed]
            if unknown:
                raise ConfigError(
                    f"[{section}] {key}: unknown {unknown}; allowed: {', '.join(allowed)}"
                )
        if len(set(value)) != len(value):
            raise ConfigError(f"[{section}] {key} = {value!r}: has duplicates")
        return value
