"""The execution engine and the position manager trading through ccxt on an exchange's testnet
(the fake exchange at its HTTP boundary, Binance USDⓈ-M futures): a confirmed signal's entry,
its protection once filled, TP1 and the stop moved to breakeven, TP2; our tables and the
exchange's wallet agree to the cent. The same jobs as on paper, only the gateway differs."""
import time
from decimal import Decimal as D

import pytest

from common.config import load_config
from common.trade.orders import client_order_id
from common.trading import execution_engine, position_manager
from tests.fake_exchange import FakeExchange
from tests.spark.rows import append

SYMBOL, SIGNAL = "BTCUSDT", "ccxt-signal-1"
H = 3_600_000


@pytest.fixture
def fake():
    with FakeExchange({}, symbols=(SYMBOL,)) as server:
        server.set_account("binance", balance=10_000, maker_fee="0.0002", taker_fee="0.0005", leverage=20)
        server.trade_price("binance", SYMBOL, 60_000)
        yield server
        assert server.unknown_requests == []


@pytest.fixture
def testnet(spark, app_env, initialized_lake, fake, monkeypatch, tmp_path):
    """gold.trading_config switched to the binance testnet, the API keys in the environment."""
    monkeypatch.setenv("CRYPTOBOT_BINANCE_TESTNET_API_KEY", "test-key")
    monkeypatch.setenv("CRYPTOBOT_BINANCE_TESTNET_API_SECRET", "test-secret")
    monkeypatch.setenv("CRYPTOBOT_SECRETS_FILE", str(tmp_path / "none.toml"))

    def set_param(name, value):
        spark.sql(f"UPDATE gold.trading_config SET param_value = '{value}' WHERE param_name = '{name}'")

    set_param("paper_trading", "false")
    set_param("trading_symbols", f'["{SYMBOL}"]')
    # What a user does before trading another account: settle what paper holds (the suite's
    # paper tests share this lake).
    from common.trading_config import read_trading_config
    from common.trading.settle_account import abandon_paper_state

    abandon_paper_state(spark, load_config(env=app_env), read_trading_config(spark))
    now = int(time.time() * 1000) // 60_000 * 60_000  # fresh 1m klines: no entry on stale data
    append(spark, "silver.unified_klines", [{
        "exchange": "binance", "symbol": SYMBOL, "exchange_symbol": SYMBOL, "interval": "1m",
        "open_time_ms": now - n * 60_000, "close_time_ms": now - n * 60_000 + 59_999, "open": 60_000.0,
        "high": 60_100.0, "low": 59_900.0, "close": 60_000.0, "volume": 1.0, "schema_version": 1,
        "kafka_partition": 0, "kafka_offset": 0} for n in range(1, 70)])
    yield load_config(env={**app_env, "CRYPTOBOT_EXECUTION__API_BASE_URL": fake.base_url,
                           "CRYPTOBOT_EXECUTION__REQUEST_TIMEOUT_MS": "2000"})
    set_param("paper_trading", "true")
    set_param("trading_symbols", '["BTCUSDT", "ETHUSDT"]')


def legs(spark):
    return {(r.leg, r.version): r for r in spark.table("trading.orders").where(f"signal_id = '{SIGNAL}'").collect()}


def test_a_confirmed_signal_traded_on_the_testnet_from_entry_to_tp2(spark, testnet, fake):
    known_at = int(time.time() * 1000) - 10 * 60_000  # confirmed ten minutes ago: fresh on the wall clock
    append(spark, "gold.signals_all", [{
        "signal_id": SIGNAL, "strategy": "smc", "exchange": "binance", "symbol": SYMBOL, "interval": "1h",
        "direction": "long", "status": "confirmed", "trigger_bar_time_ms": known_at - H + 1, "known_at_ms": known_at,
        "entry_price": 59_000.0, "sl_price": 58_000.0, "tp1_price": 61_000.0, "tp2_price": 62_000.0,
        "score": 80.0}])

    assert execution_engine.run(spark, testnet).placed == 1
    entry = legs(spark)[("entry", 0)]
    assert (entry.status, entry.mode, entry.amount, entry.price) == ("open", "testnet", D("0.1"), D(59_000))
    assert fake.order("binance", client_order_id(SIGNAL, "entry")).state == "new"  # on the exchange, once
    assert execution_engine.run(spark, testnet).placed == 0

    fake.advance_price("binance", SYMBOL, high=59_500, low=58_900, close=59_200)  # fills the entry
    position_manager.run(spark, testnet)
    placed = legs(spark)
    assert placed[("entry", 0)].status == "closed" and placed[("entry", 0)].fee == D("1.18")
    assert {k: (o.order_type, o.amount, o.status) for k, o in placed.items() if k[0] != "entry"} == {
        ("sl", 0): ("stop_market", D(0), "open"), ("tp1", 0): ("limit", D("0.05"), "open"),
        ("tp2", 0): ("limit", D("0.05"), "open")}
    assert fake.position("binance", SYMBOL)[0] == D("0.1")

    fake.advance_price("binance", SYMBOL, high=61_200, low=59_800, close=61_100)  # TP1
    position_manager.run(spark, testnet)
    placed = legs(spark)
    assert (placed[("tp1", 0)].status, placed[("sl", 0)].status, placed[("sl", 1)].status) == (
        "closed", "canceled", "open")
    assert placed[("sl", 1)].stop_price > D(59_000)  # breakeven after fees
    assert fake.order("binance", client_order_id(SIGNAL, "sl", 0), conditional=True).state == "canceled"

    fake.advance_price("binance", SYMBOL, high=62_300, low=61_000, close=62_100)  # TP2
    position_manager.run(spark, testnet)
    closed = spark.table("trading.positions_closed").where(f"signal_id = '{SIGNAL}'").first()
    # 0.05 x 2 000 + 0.05 x 3 000 = 250; maker fees 0.02 % of 5 900 + 3 050 + 3 100 = 2.41
    assert (closed.realized_pnl, closed.fees, closed.net_pnl, closed.exit_reason, closed.mode) == (
        D(250), D("2.41"), D("247.59"), "take_profit_2", "testnet")
    assert fake.wallet_balance("binance") == D(10_000) + closed.net_pnl  # the exchange agrees to the cent
    assert fake.position("binance", SYMBOL)[0] == 0
    assert legs(spark)[("sl", 1)].status == "canceled"
    assert spark.table("trading.positions_open").where(f"signal_id = '{SIGNAL}'").count() == 0
