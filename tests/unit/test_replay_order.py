"""A replay sends klines in the order they became known, with the Kafka contract's fields."""
import json
import math

import pytest

from streaming.producers.messages import SCHEMA_VERSION, encode
from streaming.replay import replay_messages
from tests.unit.test_kline_files import T0, minutes


def test_messages_follow_close_time_and_a_bar_follows_its_last_minute():
    messages = replay_messages(minutes(30), "1m", ["15m"], exchange="okx", symbol="BTCUSDT", source="test")
    closes = [close for close, _, _ in messages]
    assert closes == sorted(closes)
    keys = [key for _, key, _ in messages]
    # the 15m bar that closes at T0+15m comes right after the 1m bar closing then
    first_15m = keys.index("BTCUSDT|15m")
    assert messages[first_15m - 1][2]["open_time"] == T0 + 14 * 60_000
    assert messages[first_15m][0] == T0 + 15 * 60_000
    assert keys.count("BTCUSDT|1m") == 30 and keys.count("BTCUSDT|15m") == 2


def test_message_carries_the_contract_fields_and_its_true_source():
    _, key, message = replay_messages(minutes(1), "1m", [], exchange="okx", symbol="ETHUSDT", source="bitstamp")[0]
    assert key == "ETHUSDT|1m"
    assert message["schema_version"] == SCHEMA_VERSION
    assert (message["exchange"], message["symbol"], message["exchange_symbol"], message["ccxt_symbol"]) == (
        "okx", "ETHUSDT", "ETH-USDT-SWAP", "ETH/USDT:USDT")
    assert (message["open_time"], message["close_time"]) == (T0, T0 + 59_999)
    assert message["source"] == "bitstamp"
    assert json.loads(encode(message)) == message


def test_a_nan_price_cannot_be_encoded():
    _, _, message = replay_messages(minutes(1), "1m", [], exchange="binance", symbol="BTCUSDT", source="x")[0]
    message["close"] = math.nan
    with pytest.raises(ValueError):
        encode(message)
