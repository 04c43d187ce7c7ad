"""The application config: defaults load, environment overrides apply, bad values fail loudly."""
import pytest

from common.analytics.series import AnalyticsParams
from common.config import PROJECT_ROOT, ConfigError, load_config


def test_default_config_loads_with_the_documented_defaults():
    config = load_config(env={})
    assert config.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert config.exchanges.enabled == ("binance", "bybit", "okx")
    assert config.exchanges.intervals == ("1m", "15m", "1h", "4h")
    assert config.lake.root == str(PROJECT_ROOT / "data" / "lake")
    assert config.topics() == ["klines.binance", "market.binance", "klines.bybit",
                               "market.bybit", "klines.okx", "market.okx"]


def test_environment_overrides_typed_values():
    config = load_config(env={
        "CRYPTOBOT_KAFKA__BOOTSTRAP_SERVERS": "broker-1:19092,broker-2:19092",
        "CRYPTOBOT_SPARK__SHUFFLE_PARTITIONS": "8",
        "CRYPTOBOT_EXCHANGES__SYMBOLS": "BTCUSDT, SOLUSDT",
        "CRYPTOBOT_LAKE__ROOT": "s3a://bucket/lake",
    })
    assert config.kafka.broker_host == "broker-1" and config.kafka.broker_port == 19092
    assert config.spark.shuffle_partitions == 8
    assert config.exchanges.symbols == ("BTCUSDT", "SOLUSDT")
    assert config.lake.root == "s3a://bucket/lake"  # a URI is kept as it is
    assert config.lake.table_path("silver", "unified_klines") == "s3a://bucket/lake/silver/unified_klines"


@pytest.mark.parametrize("env, message", [
    ({"CRYPTOBOT_KAFKA__NO_SUCH_KEY": "1"}, "names no config key [kafka] no_such_key"),
    ({"CRYPTOBOT_SPARK__SHUFFLE_PARTITIONS": "many"}, "expected a whole number"),
    ({"CRYPTOBOT_SPARK__SHUFFLE_PARTITIONS": "0"}, "[spark] shuffle_partitions = 0: must be between 1 and 10000"),
    ({"CRYPTOBOT_EXCHANGES__INTERVALS": "1m,7m"}, "[exchanges] intervals: unknown ['7m']"),
    ({"CRYPTOBOT_EXCHANGES__ENABLED": "binance,kraken"}, "[exchanges] enabled: unknown ['kraken']"),
    ({"CRYPTOBOT_EXCHANGES__SYMBOLS": "btc/usdt"}, "is not a canonical symbol"),
    ({"CRYPTOBOT_KAFKA__BOOTSTRAP_SERVERS": "localhost"}, "each server must be host:port"),
    ({"CRYPTOBOT_KAFKA__BROKER_HEAP_MB": "2048"}, "[kafka] broker_heap_mb = 2048: must be between 128 and 512"),
])
def test_bad_values_are_refused_naming_the_key(env, message):
    with pytest.raises(ConfigError) as err:
        load_config(env=env)
    assert message in str(err.value)


def test_missing_key_and_missing_file_are_named(tmp_path):
    config_file = tmp_path / "app.toml"
    config_file.write_text((PROJECT_ROOT / "conf" / "app.toml").read_text().replace('market_type = "swap"', ""))
    with pytest.raises(ConfigError, match=r"missing config key \[exchanges\] market_type"):
        load_config(config_file, env={})
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(env={"CRYPTOBOT_CONFIG": str(tmp_path / "nope.toml")})


def test_analytics_parameters_per_interval(tmp_path):
    config_file = tmp_path / "app.toml"
    config_file.write_text((PROJECT_ROOT / "conf" / "app.toml").read_text().replace(
        "[producer]", "[analytics.intervals.1m]\nswing_strength = 10\n\n[producer]", 1))
    analytics = load_config(config_file, env={}).analytics
    params = lambda interval: AnalyticsParams.from_config(analytics, interval)  # noqa: E731
    assert params("1m").swing_strength == 10 and params("1h").swing_strength == 5
    assert params("1h").profile_window_bars == 200
    config_file.write_text(config_file.read_text().replace("swing_strength = 10", "swing_strength = 0"))
    with pytest.raises(ConfigError, match=r"\[analytics.intervals.1m\] swing_strength = 0: must be between 1"):
        load_config(config_file, env={})


@pytest.mark.parametrize("section", ["execution", "producer"])
@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:9000/proxy", "http://[::1]:8080",
                                 "https://proxy.invalid:8443/binance"])
def test_an_api_base_url_is_https_or_this_machine_s_loopback(section, url):
    config = load_config(env={f"CRYPTOBOT_{section.upper()}__API_BASE_URL": url})
    assert getattr(config, section).api_base_url == url


@pytest.mark.parametrize("url, message", [
    ("http://proxy.invalid:8080", "[execution] api_base_url = 'http://proxy.invalid:8080': must be https; "
                                  "http only to a loopback host (127.0.0.1, localhost, ::1)"),
    ("http://10.0.0.5", "must be https"),
    ("proxy.invalid:8080", "[execution] api_base_url = 'proxy.invalid:8080': must be a URL like"),
    ("ftp://proxy.invalid", "must be a URL like"),
    ("https://proxy.invalid/?key=1", "must have no query or fragment"),
    ("https://me:hunter2@proxy.invalid", "[execution] api_base_url: must not hold a user or password"),
])
def test_an_api_base_url_in_the_clear_or_malformed_is_refused_naming_the_key(url, message):
    with pytest.raises(ConfigError) as err:
        load_config(env={"CRYPTOBOT_EXECUTION__API_BASE_URL": url})
    assert message in str(err.value) and "hunter2" not in str(err.value)


@pytest.mark.parametrize("change, message", [
    (("[kafka]", "[kafka]\nbootstrap_server = \"x:1\""),
     "unknown config key [kafka] bootstrap_server; known keys of [kafka]: bootstrap_servers, "),
    (("[producer]", "[prodcuer]\npoll_interval_seconds = 5\n\n[producer]"), "unknown config section [prodcuer]"),
    (("[paths]", "api_key = \"pasted\"\n\n[paths]"), "unknown config key (outside any section) [api_key]"),
    (("[execution]", "[execution]\napi_secret = \"pasted\"\nretry_max = 3"),
     "unknown config key [execution] api_secret (and retry_max)"),
])
def test_unknown_keys_and_sections_in_the_config_file_are_refused_by_name(tmp_path, change, message):
    config_file = tmp_path / "app.toml"
    config_file.write_text((PROJECT_ROOT / "conf" / "app.toml").read_text().replace(*change, 1))
    with pytest.raises(ConfigError) as err:
        load_config(config_file, env={})
    assert message in str(err.value) and "pasted" not in str(err.value)


def test_every_key_of_the_shipped_config_file_is_read():
    load_config(env={})  # the unknown-key check passes on conf/app.toml itself


@pytest.mark.parametrize("name, message", [
    ("CRYPTOBOT_KAFKA__BOOTSTRAP_SERVER", "names no config key [kafka] bootstrap_server"),
    ("CRYPTOBOT_NOSUCH__KEY", "names no config key [nosuch] key"),
    ("CRYPTOBOT_ANALYTICS__INTERVALS", "[analytics.intervals] is a table, set in the config file"),
])
def test_an_environment_override_of_an_unknown_key_or_a_table_is_refused_by_name(tmp_path, name, message):
    config_file = tmp_path / "app.toml"
    config_file.write_text((PROJECT_ROOT / "conf" / "app.toml").read_text().replace(
        "[producer]", "[analytics.intervals.1m]\nswing_strength = 10\n\n[producer]", 1))
    with pytest.raises(ConfigError) as err:
        load_config(config_file, env={name: "1"})
    assert message in str(err.value)
