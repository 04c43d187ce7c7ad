"""Trading safety, one scenario per gap an audit found: orders reach only the configured account,
every entry passes the execution engine's guards, a position is never without a working stop,
and one bad signal never blocks the rest. Paper scenarios run on the paper exchange; the
account switch and the exchange's own refusals on the fake exchange through ccxt."""
import time
from dataclasses import replace
from datetime import date
from decimal import Decimal as D

import pytest
from pyspark.sql import functions as F

from common.config import load_config
from common.exchange.account import build_gateway
from common.trade.orders import OrderRequest, client_order_id
from common.trading_config import read_trading_config
from common.trading import execution_engine, position_manager, settle_account
from common.trading.trading_store import AccountSwitchRefused, intent_row, write_orders
from tests.fake_exchange import FakeExchange
from tests.spark.rows import append

H, M = 3_600_000, 60_000
DAY0 = 1_789_000_000_000 // 86_400_000 * 86_400_000  # 2026-09-10, days of this module's own
# One market per scenario where orders rest at the paper exchange: its book outlives the rows.
SYMBOLS = ("SAFAUSDT", "SAFBUSDT", "SAFCUSDT", "SAFDUSDT", "SAFEUSDT", "SAFFUSDT", "BTCUSDT", "SAFGUSDT", "SAFHUSDT")


@pytest.fixture(scope="module")
def config(app_env, initialized_lake, tmp_path_factory):
    return load_config(env={**app_env, "CRYPTOBOT_PATHS__DATA_DIR": str(tmp_path_factory.mktemp("safety-data"))})


@pytest.fixture
def set_param(spark, initialized_lake):
    changed = {}

    def set_(name, value):
        if name not in changed:
            changed[name] = spark.sql(f"SELECT param_value FROM gold.trading_config "
                                      f"WHERE param_name = '{name}'").first()[0]
        spark.sql(f"UPDATE gold.trading_config SET param_value = '{value}' WHERE param_name = '{name}'")

    yield set_
    for name, value in changed.items():
        spark.sql(f"UPDATE gold.trading_config SET param_value = '{value}' WHERE param_name = '{name}'")
    # The lake is shared: nothing of this module may stay active for another test's turns.
    symbols = ", ".join(repr(s) for s in SYMBOLS)
    for table in ("trading.positions_open", "trading.orders"):
        spark.sql(f"DELETE FROM {table} WHERE symbol IN ({symbols}) AND (signal_id LIKE 'safe-%')")
    spark.sql("UPDATE gold.signals_all SET status = 'cancelled' WHERE signal_id LIKE 'safe-%' AND status = 'confirmed'")


def signal(signal_id, symbol, day, direction="long", entry=100.0, sl=98.0, tp1=104.0, tp2=108.0, known_at=None):
    known = known_at if known_at is not None else day + H - 1
    return {"signal_id": signal_id, "strategy": "smc", "exchange": "binance", "symbol": symbol, "interval": "1h",
            "direction": direction, "status": "confirmed", "trigger_bar_time_ms": known - H + 1, "known_at_ms": known,
            "entry_price": entry, "sl_price": sl, "tp1_price": tp1, "tp2_price": tp2, "score": 80.0}


def minute(symbol, open_ms, o, h, low, c=None):
    return {"exchange": "binance", "symbol": symbol, "exchange_symbol": symbol, "interval": "1m",
            "open_time_ms": open_ms, "close_time_ms": open_ms + M - 1, "open": float(o), "high": float(h),
            "low": float(low), "close": float(c if c is not None else (h + low) / 2), "volume": 1.0,
            "schema_version": 1, "kafka_partition": 0, "kafka_offset": 0}


def orders_of(spark, signal_id):
    return {(r.leg, r.version): r for r in spark.table("trading.orders").where(f"signal_id = '{signal_id}'").collect()}


def status_of(spark, signal_id):
    row = spark.table("gold.signals_all").where(f"signal_id = '{signal_id}'").first()
    return row.status, row.status_reason


# -- guards on every entry path --------------------------------------------------------------

def test_the_exposure_cap_counts_the_entries_planned_earlier_in_the_same_run(spark, config, set_param):
    """Three signals in one run against a cap that fits two entries (each 50 x 100 = 5 000
    notional on 10 000 of equity, cap 100 %): the third is refused. Before, only filled
    positions counted, and all three were sent."""
    day = DAY0
    symbols = SYMBOLS[:3]
    set_param("trading_symbols", str(list(symbols)).replace("'", '"'))
    set_param("max_total_exposure_pct", "100")
    append(spark, "gold.signals_all", [signal(f"safe-cap-{i}", s, day) for i, s in enumerate(symbols)])
    append(spark, "silver.unified_klines", [minute(s, day + 60 * M, 101, 101.5, 100.5) for s in symbols])
    result = execution_engine.run(spark, config)
    assert result.placed == 2
    assert status_of(spark, "safe-cap-2")[0] == "cancelled"
    assert status_of(spark, "safe-cap-2")[1].startswith("max_total_exposure_pct reached: 10000.00 of 10000.00")
    assert ("entry", 0) not in orders_of(spark, "safe-cap-2")


def test_the_kill_switch_cancels_resting_entries_and_leaves_the_stops_of_open_positions(spark, config, set_param):
    day, resting, filled = DAY0 + 86_400_000, SYMBOLS[3], SYMBOLS[4]
    set_param("trading_symbols", f'["{resting}", "{filled}"]')
    append(spark, "gold.signals_all", [signal("safe-kill-rest", resting, day),
                                       signal("safe-kill-open", filled, day)])
    append(spark, "silver.unified_klines", [minute(s, day + 60 * M, 101, 101.5, 100.5) for s in (resting, filled)])
    assert execution_engine.run(spark, config).placed == 2
    append(spark, "silver.unified_klines", [minute(resting, day + 61 * M, 101, 101.5, 100.5),
                                            minute(filled, day + 61 * M, 100.5, 100.7, 99.8)])  # fills one
    position_manager.run(spark, config)
    assert orders_of(spark, "safe-kill-open")[("entry", 0)].status == "closed"

    set_param("trading_enabled", "false")
    result = execution_engine.run(spark, config)
    assert result.halted == "trading_enabled = false (kill switch)"
    entry = orders_of(spark, "safe-kill-rest")[("entry", 0)]
    assert (entry.status, entry.error) == ("canceled", "trading_enabled = false (kill switch)")
    gateway = build_gateway(config, read_trading_config(spark))
    assert gateway.find_order(resting, entry.client_order_id).status == "canceled"  # at the exchange too
    assert [o.client_order_id for o in gateway.open_orders(filled) if o.order_type == "stop_market"] == [
        client_order_id("safe-kill-open", "sl", 0)]  # the open position keeps its stop
    halts = spark.table("trading.audit_log").where("entity_type = 'trading' AND to_status = 'halted'").collect()
    assert any(h.reason == "trading_enabled = false (kill switch)" for h in halts)
    assert spark.table("trading.audit_log").where(
        f"entity_id = '{entry.client_order_id}' AND to_status = 'canceled'").count() == 1


def test_the_position_manager_never_sends_an_entry(spark, config, set_param):
    """An entry intent on record that never reached the exchange: the manager leaves it to the
    engine while its signal is young, and cancels it once the signal is too old. It never sends
    it (before, it did, past every guard)."""
    day, symbol = DAY0 + 2 * 86_400_000, SYMBOLS[5]
    set_param("trading_symbols", f'["{symbol}"]')
    set_param("trading_enabled", "false")  # the engine may not send it either
    append(spark, "gold.signals_all", [signal("safe-unsent", symbol, day)])
    append(spark, "silver.unified_klines", [minute(symbol, day + 60 * M, 101, 101.5, 100.5)])
    cid = client_order_id("safe-unsent", "entry", 0)
    gateway = build_gateway(config, read_trading_config(spark))
    gateway.set_rules(symbol, D(100))
    write_orders(spark, config, [intent_row(OrderRequest(cid, symbol, "buy", "limit", D(10), D(100)), "safe-unsent",
                                            replace_account(gateway), "entry", 0, day + 61 * M - 1)])
    position_manager.run(spark, config)
    assert orders_of(spark, "safe-unsent")[("entry", 0)].status == "new"
    assert gateway.find_order(symbol, cid) is None
    # four hours of klines later: the signal is older than signal_max_age_bars (3)
    append(spark, "silver.unified_klines", [minute(symbol, day + (60 + n) * M, 101, 101.5, 100.5)
                                            for n in range(1, 250, 8)])
    position_manager.run(spark, config)
    entry = orders_of(spark, "safe-unsent")[("entry", 0)]
    assert entry.status == "canceled" and entry.error.startswith("never sent, and its signal is too old")
    assert gateway.find_order(symbol, cid) is None


def replace_account(gateway):
    from common.exchange.account import account_of

    return account_of(gateway)


def test_one_bad_signal_never_blocks_the_rest(spark, config, set_param):
    day, symbol = DAY0 + 3 * 86_400_000, SYMBOLS[0]
    set_param("trading_symbols", f'["{symbol}", "SAFBUSDT", "SAFCUSDT", "SAFDUSDT"]')
    set_param("max_open_positions", "10")
    append(spark, "gold.signals_all", [
        signal("safe-nan", "SAFBUSDT", day, entry=float("nan")),
        signal("safe-inf", "SAFCUSDT", day, sl=float("inf")),
        signal("safe-wrong-side", "SAFDUSDT", day, direction="long", sl=102.0),
        signal("safe-good", symbol, day)])
    append(spark, "silver.unified_klines", [minute(s, day + 60 * M, 101, 101.5, 100.5)
                                            for s in (symbol, "SAFBUSDT", "SAFCUSDT", "SAFDUSDT")])
    assert execution_engine.run(spark, config).placed == 1
    assert orders_of(spark, "safe-good")[("entry", 0)].status == "open"
    assert status_of(spark, "safe-nan") == ("cancelled", "invalid plan: entry_price NaN is not a finite positive price")
    assert status_of(spark, "safe-inf") == ("cancelled", "invalid plan: sl_price Infinity is not a finite positive price")
    assert status_of(spark, "safe-wrong-side") == ("cancelled",
                                                   "the stop 102.0 is on the wrong side of the long entry 100.0")


# -- no position without a working stop ------------------------------------------------------

def test_the_stop_is_placed_with_the_entry_and_works_on_the_fill_bar(spark, config, set_param):
    """The entry's stop goes to the exchange with it: a bar that fills the entry and falls
    through the stop closes the position on that bar, before any manager turn (before, the
    stop came at the manager's next turn, live from the bar after)."""
    day, symbol = DAY0 + 4 * 86_400_000, SYMBOLS[7]
    set_param("trading_symbols", f'["{symbol}"]')
    append(spark, "gold.signals_all", [signal("safe-stop-now", symbol, day)])
    append(spark, "silver.unified_klines", [minute(symbol, day + 60 * M, 101, 101.5, 100.5)])
    assert execution_engine.run(spark, config).placed == 1
    placed = orders_of(spark, "safe-stop-now")
    assert (placed[("sl", 0)].status, placed[("sl", 0)].stop_price, placed[("sl", 0)].close_position) == (
        "open", D(98), True)
    append(spark, "silver.unified_klines", [minute(symbol, day + 61 * M, 100.5, 100.6, 97.0, 97.5)])
    position_manager.run(spark, config)
    closed = spark.table("trading.positions_closed").where("signal_id = 'safe-stop-now'").first()
    assert closed.exit_reason == "stop_loss" and closed.closed_at == closed.opened_at  # on the fill's own bar
    assert build_gateway(config, read_trading_config(spark)).position_amount(symbol) == 0


# -- the account: on the fake exchange through ccxt -------------------------------------------

@pytest.fixture
def fake():
    with FakeExchange({}, symbols=("BTCUSDT",)) as server:
        server.set_account("binance", balance=10_000, maker_fee="0.0002", taker_fee="0.0005", leverage=20)
        server.trade_price("binance", "BTCUSDT", 60_000)
        yield server


def app_config_on_testnet(app_env, config, fake, monkeypatch, tmp_path):
    monkeypatch.setenv("CRYPTOBOT_BINANCE_TESTNET_API_KEY", "test-key")
    monkeypatch.setenv("CRYPTOBOT_BINANCE_TESTNET_API_SECRET", "test-secret")
    monkeypatch.setenv("CRYPTOBOT_SECRETS_FILE", str(tmp_path / "none.toml"))
    return replace(config, execution=replace(config.execution, api_base_url=fake.base_url, request_timeout_ms=2000))


def to_testnet(spark, config, set_param):
    """What a user does to move from paper to the testnet: switch, and settle what paper holds
    (here: abandon it; other modules' paper trades share this lake)."""
    set_param("paper_trading", "false")
    set_param("trading_symbols", '["BTCUSDT"]')
    settle_account.abandon_paper_state(spark, config, read_trading_config(spark))


def fresh_minutes(spark, symbol="BTCUSDT", minutes=70):
    now = int(time.time() * 1000) // M * M
    append(spark, "silver.unified_klines", [minute(symbol, now - n * M, 60_000, 60_100, 59_900)
                                            for n in range(1, minutes)])


def test_no_new_entry_on_stale_data(spark, config, set_param, fake, app_env, monkeypatch, tmp_path):
    testnet = app_config_on_testnet(app_env, config, fake, monkeypatch, tmp_path)
    to_testnet(spark, config, set_param)
    known = int(time.time() * 1000) - 10 * M
    append(spark, "gold.signals_all", [signal("safe-stale", "BTCUSDT", 0, entry=59_000.0, sl=58_000.0, tp1=61_000.0,
                                              tp2=62_000.0, known_at=known)])
    now = int(time.time() * 1000) // M * M  # the newest kline ten minutes old (this runs before any fresh one)
    append(spark, "silver.unified_klines", [minute("BTCUSDT", now - n * M, 60_000, 60_100, 59_900)
                                            for n in range(10, 70)])
    result = execution_engine.run(spark, testnet)
    assert result.placed == 0 and any(k.startswith("stale data: the newest 1m kline closed") for k in result.skipped)
    assert fake.book("binance").orders == {}


def test_switching_to_the_testnet_with_paper_orders_open_is_refused_and_nothing_reaches_it(
        spark, config, set_param, fake, app_env, monkeypatch, tmp_path):
    day, symbol = DAY0 + 5 * 86_400_000, SYMBOLS[8]
    set_param("trading_symbols", f'["{symbol}"]')
    append(spark, "gold.signals_all", [signal("safe-switch-paper", symbol, day)])
    append(spark, "silver.unified_klines", [minute(symbol, day + 60 * M, 101, 101.5, 100.5)])
    assert execution_engine.run(spark, config).placed == 1  # on paper: an entry and its stop resting

    testnet = app_config_on_testnet(app_env, config, fake, monkeypatch, tmp_path)
    set_param("paper_trading", "false")
    set_param("trading_symbols", '["BTCUSDT"]')
    known = int(time.time() * 1000) - 10 * M
    append(spark, "gold.signals_all", [signal("safe-switch-testnet", "BTCUSDT", 0, entry=59_000.0, sl=58_000.0,
                                              tp1=61_000.0, tp2=62_000.0, known_at=known)])
    fresh_minutes(spark)
    for job in (execution_engine, position_manager):
        with pytest.raises(AccountSwitchRefused) as refused:
            job.run(spark, testnet)
        assert "active orders on binance paper account paper" in str(refused.value)
        assert "cryptobot settle --abandon-paper" in str(refused.value)
    assert fake.book("binance").orders == {}  # nothing of paper's, nothing at all, reached the testnet

    settle_account.run(spark, testnet, abandon_paper=True)
    paper_entry = orders_of(spark, "safe-switch-paper")[("entry", 0)]
    assert paper_entry.status == "canceled" and paper_entry.error.startswith("abandoned by ")
    assert spark.table("trading.audit_log").where(
        f"entity_id = '{paper_entry.client_order_id}' AND reason LIKE 'abandoned by %'").count() == 1
    assert execution_engine.run(spark, testnet).placed == 1  # the testnet's own signal, and only it
    assert {o.client_id for o in fake.book("binance").orders.values()} == {
        client_order_id("safe-switch-testnet", "entry", 0), client_order_id("safe-switch-testnet", "sl", 0)}
    position_manager.run(spark, testnet)
    assert {o.client_id for o in fake.book("binance").orders.values()} == {
        client_order_id("safe-switch-testnet", "entry", 0), client_order_id("safe-switch-testnet", "sl", 0)}
    settle_account.run(spark, testnet)  # flat again: the entry cancelled, the stop with it next turn
    position_manager.run(spark, testnet)
    assert not [o for o in fake.book("binance").orders.values() if o.is_open]


def test_sizing_uses_free_margin_and_a_zero_balance_halts(spark, config, set_param, fake, app_env, monkeypatch,
                                                          tmp_path):
    testnet = app_config_on_testnet(app_env, config, fake, monkeypatch, tmp_path)
    to_testnet(spark, config, set_param)
    fake.set_account("binance", balance=0)
    known = int(time.time() * 1000) - 10 * M
    append(spark, "gold.signals_all", [signal("safe-no-margin", "BTCUSDT", 0, entry=59_000.0, sl=58_000.0,
                                              tp1=61_000.0, tp2=62_000.0, known_at=known)])
    fresh_minutes(spark)
    result = execution_engine.run(spark, testnet)
    assert result.halted.startswith("no free margin: binance reports 0 USDT free")
    assert status_of(spark, "safe-no-margin")[0] == "confirmed" and fake.book("binance").orders == {}




def open_a_testnet_trade(spark, config, set_param, fake, app_env, monkeypatch, tmp_path, signal_id):
    """A confirmed testnet signal on BTCUSDT, its entry placed and filled at 59 000."""
    testnet = app_config_on_testnet(app_env, config, fake, monkeypatch, tmp_path)
    to_testnet(spark, config, set_param)
    known = int(time.time() * 1000) - 10 * M
    append(spark, "gold.signals_all", [signal(signal_id, "BTCUSDT", 0, entry=59_000.0, sl=58_000.0, tp1=61_000.0,
                                              tp2=62_000.0, known_at=known)])
    fresh_minutes(spark)
    return testnet


def open_stops(fake):
    return [o for o in fake.book("binance").orders.values() if o.is_open and o.trigger is not None]


def test_a_stop_rejected_after_one_retry_closes_the_position_at_market(spark, config, set_param, fake, app_env,
                                                                       monkeypatch, tmp_path):
    """The engine's stop and the manager's one retry both rejected: the position is closed at
    once with a reduce-only market order, audited; before, a new version was tried every turn
    while the position stood without a stop."""
    testnet = open_a_testnet_trade(spark, config, set_param, fake, app_env, monkeypatch, tmp_path, "safe-rejected")
    fake.inject("binance", "/fapi/v1/algoOrder", "rejected", times=2, method="POST")
    assert execution_engine.run(spark, testnet).placed == 1
    assert orders_of(spark, "safe-rejected")[("sl", 0)].status == "rejected"
    fake.advance_price("binance", "BTCUSDT", high=59_500, low=58_900, close=59_200)  # fills the entry
    managed = position_manager.run(spark, testnet)
    assert managed.actions["positions closed at market after a rejected stop"] == 1
    legs = orders_of(spark, "safe-rejected")
    assert (legs[("sl", 1)].status, legs[("close", 0)].status, legs[("close", 0)].order_type) == (
        "rejected", "closed", "market")
    assert fake.position("binance", "BTCUSDT")[0] == 0  # flat at once
    assert spark.table("trading.audit_log").where(
        "entity_id = 'safe-rejected' AND to_status = 'closing' AND reason LIKE 'the stop was rejected twice%'"
    ).count() == 1
    position_manager.run(spark, testnet)
    closed = spark.table("trading.positions_closed").where("signal_id = 'safe-rejected'").first()
    assert closed.exit_reason == "market_close"
    assert not [o for o in fake.book("binance").orders.values() if o.is_open]  # nothing left working


def test_a_stop_is_replaced_only_once_its_successor_works(spark, config, set_param, fake, app_env, monkeypatch,
                                                          tmp_path):
    """After TP1 the stop moves to breakeven: the new stop first, the old one cancelled after it
    works. Its first try rejected, its retry placed: the old stop stood all the while. Before,
    the old one was cancelled first, and the rejection left the position bare."""
    testnet = open_a_testnet_trade(spark, config, set_param, fake, app_env, monkeypatch, tmp_path, "safe-replace")
    assert execution_engine.run(spark, testnet).placed == 1
    fake.advance_price("binance", "BTCUSDT", high=59_500, low=58_900, close=59_200)  # the entry
    position_manager.run(spark, testnet)
    assert [o.client_id for o in open_stops(fake)] == [client_order_id("safe-replace", "sl", 0)]
    fake.advance_price("binance", "BTCUSDT", high=61_200, low=59_800, close=61_100)  # TP1
    fake.inject("binance", "/fapi/v1/algoOrder", "rejected", times=1, method="POST")
    position_manager.run(spark, testnet)
    legs = orders_of(spark, "safe-replace")
    assert (legs[("sl", 0)].status, legs[("sl", 1)].status, legs[("sl", 2)].status) == ("canceled", "rejected", "open")
    assert legs[("sl", 2)].stop_price > D(59_000)  # breakeven after fees
    assert [o.client_id for o in open_stops(fake)] == [client_order_id("safe-replace", "sl", 2)]
    settle_account.run(spark, testnet)
    position_manager.run(spark, testnet)
    assert fake.position("binance", "BTCUSDT")[0] == 0


# -- the fault campaign ------------------------------------------------------------------------

# (path substring, HTTP method) of the requests a fault may hit; a "timeout" or a 5xx answer
# comes after the fake exchange did what was asked (a lost answer), "rejected" before.
FAULT_TARGETS = (("/fapi/v1/order", "POST"), ("/fapi/v1/algoOrder", "POST"), ("/fapi/v1/order", "GET"),
                 ("/fapi/v1/algoOrder", "GET"), ("/fapi/v1/order", "DELETE"), ("/fapi/v1/algoOrder", "DELETE"),
                 ("/fapi/", None))
FAULT_KINDS = ("timeout", "http_500", "http_503", "rejected", "http_429")
CAMPAIGN_SEED, CAMPAIGN_BARS, CAMPAIGN_FIRST_HOUR = 26, 15, 40
CAMPAIGN_KLINES_PARTITION = 26  # marks the campaign's klines, deleted after it: the lake is shared


def campaign_bars():
    """Hours of the bundled sample (Bitstamp BTC/USD), the market the campaign's fake exchange moves through."""
    from tests.sample_series import sample_series

    hours = sample_series(intervals=("1h",))["1h"]
    hours = hours.iloc[CAMPAIGN_FIRST_HOUR:CAMPAIGN_FIRST_HOUR + CAMPAIGN_BARS]
    return hours[["open", "high", "low", "close"]].round(1).to_dict("records")  # BTCUSDT's tick


def campaign_signal(signal_id, last_bar, known_at_ms):
    """A confirmed signal in the last hour's direction, its limit at the last price (so the entry
    fills on arrival, and its stop goes out on a live position), the stop 0.35 % away (about one
    hour's range, so trades end within the campaign), TP1 and TP2 at 1 R and 2 R."""
    side = 1 if last_bar["close"] >= last_bar["open"] else -1
    entry = last_bar["close"]
    risk = round(entry * 0.0035, 1)
    return signal(signal_id, "BTCUSDT", 0, direction="long" if side > 0 else "short", entry=entry,
                  sl=entry - side * risk, tp1=entry + side * risk, tp2=entry + side * 2 * risk,
                  known_at=known_at_ms)


def working_stop(fake, position_amount):
    """An open stop on the exchange that closes the position on its losing side."""
    book = fake.book("binance")
    side = "sell" if position_amount > 0 else "buy"
    return any(o.is_open and o.trigger is not None and o.side == side
               and (o.close_position or o.amount >= abs(position_amount))
               and ((o.trigger < book.price("BTCUSDT")) == (position_amount > 0))
               for o in book.orders.values())


def test_fault_campaign_keeps_every_invariant_after_every_turn(spark, config, set_param, fake, app_env, monkeypatch,
                                                               tmp_path):
    """A seeded campaign: fifteen hours of the sample's BTC market on the fake exchange, a signal
    planted every third hour, the engine then the manager each hour through ccxt, and before
    each job one or two faults drawn from random.Random(CAMPAIGN_SEED): a timeout or a 5xx after
    the exchange acted (a lost answer), a rejection or a 429 before, on the order, stop, lookup
    or cancel endpoints. After every turn: no client id twice at the exchange, nothing on another
    account, no entry the guards refuse (one trade at a time on the symbol, 1 % of the equity at
    risk), and no position left without a working stop by a manager's turn the exchange did not
    fail (nor by two running); then, faults over, our books equal the exchange's to the cent."""
    import random
    from collections import Counter

    from common.exchange.account import account_of

    rng = random.Random(CAMPAIGN_SEED)
    testnet = app_config_on_testnet(app_env, config, fake, monkeypatch, tmp_path)
    to_testnet(spark, config, set_param)
    bars = campaign_bars()
    fake.trade_price("binance", "BTCUSDT", bars[0]["open"])
    start_balance = fake.wallet_balance("binance")
    account = account_of(build_gateway(testnet, read_trading_config(spark)))
    planted, failures, injected, equity_at_entry = [], Counter(), Counter(), {}
    bare = {"turns": 0}
    # The jobs' clock is the wall, and the campaign's hours go by in seconds: hour h is the 1m
    # kline of minute first_minute + h, written as the market goes through it. They lie half an
    # hour and more in the past, closed and in order, so every job sees the same klines whatever
    # the wall clock does; data_max_age_seconds lets them count as fresh, and the ten minutes
    # before them fill data_gap_window_minutes (60).
    first_minute = int(time.time() * 1000) // M * M - 50 * M
    set_param("data_max_age_seconds", "7200")
    spark.sql(f"DELETE FROM silver.unified_klines WHERE exchange = 'binance' AND symbol = 'BTCUSDT' AND "
              f"interval = '1m' AND open_time_ms >= {first_minute - 12 * M}")  # earlier tests' fresh minutes
    open_ = bars[0]["open"]
    append(spark, "silver.unified_klines", [{**minute("BTCUSDT", first_minute - n * M, open_, open_, open_, open_),
                                             "kafka_partition": CAMPAIGN_KLINES_PARTITION} for n in range(1, 13)])

    def move_market(hour, bar):
        fake.advance_price("binance", "BTCUSDT", open=bar["open"], high=bar["high"], low=bar["low"],
                           close=bar["close"])
        append(spark, "silver.unified_klines", [{
            **minute("BTCUSDT", first_minute + hour * M, bar["open"], bar["high"], bar["low"], bar["close"]),
            "kafka_partition": CAMPAIGN_KLINES_PARTITION}])

    def inject_faults():
        for _ in range(rng.choice((0, 1, 1, 2))):
            path, method = rng.choice(FAULT_TARGETS)
            kind = rng.choice(FAULT_KINDS if method == "POST" else [k for k in FAULT_KINDS if k != "rejected"])
            fake.inject("binance", path, kind, times=1, method=method)
            injected[kind] += 1

    def run(job):
        """The job's run, and whether the exchange failed one of its requests."""
        first = len(fake.requests)
        try:
            job.run(spark, testnet)
        except Exception as error:  # a failed run is retried at the next turn, as the stream does
            failures[f"{job.__name__.split('.')[-1]}: {type(error).__name__}"] += 1
        return any(r["fault"] is not None for r in fake.requests[first:])

    def check_invariants(hour, equity_now=None, manager_turn_faulted=None):
        book = fake.book("binance")
        ids = Counter(o.client_id for o in book.orders.values())
        assert [i for i, n in ids.items() if n > 1] == [], f"hour {hour}: an order twice"
        assert fake.book("bybit").orders == {}
        ours = spark.table("trading.orders").where("signal_id LIKE 'safe-fc-%'").collect()
        assert {(o.mode, o.account) for o in ours} <= {("testnet", account.account)}, f"hour {hour}: other account"
        assert {o.client_id for o in book.orders.values()} <= {o.client_order_id for o in ours}
        entries = [o for o in book.orders.values() if not (o.reduce_only or o.close_position) and o.type == "limit"]
        for entry in entries:  # sized on the equity the engine read, 1 % of it at risk
            assert entry.client_id in equity_at_entry or equity_now is not None, f"hour {hour}: an entry not the engine's"
            equity = equity_at_entry.setdefault(entry.client_id, equity_now)
            planned = next(s for s in planted if client_order_id(s["signal_id"], "entry") == entry.client_id)
            risk = entry.amount * abs(entry.price - D(str(planned["sl_price"])))
            assert risk <= equity * D("0.01") * D("1.001"), f"hour {hour}: {entry.client_id} risks {risk} of {equity}"
        position = fake.position("binance", "BTCUSDT")[0]
        waiting = [e for e in entries if e.is_open and e.filled == 0]
        assert len(waiting) + (position != 0) <= 1, f"hour {hour}: two trades at once on BTCUSDT"
        if manager_turn_faulted is None:
            return
        # The manager protects or closes a bare position in its turn, unless the exchange failed it.
        bare["turns"] = bare["turns"] + 1 if position != 0 and not working_stop(fake, position) else 0
        assert bare["turns"] == 0 or manager_turn_faulted, f"hour {hour}: a position left without a working stop"
        assert bare["turns"] <= 2, f"hour {hour}: a position without a working stop for {bare['turns']} turns"

    try:
        for hour, bar in enumerate(bars):
            if hour % 3 == 1:  # known at the close of the hour before
                planted.append(campaign_signal(f"safe-fc-{hour}", bars[hour - 1], first_minute + hour * M - 1))
                append(spark, "gold.signals_all", [planted[-1]])
            inject_faults()
            equity_before = fake.book("binance").equity()
            run(execution_engine)
            check_invariants(hour, equity_now=equity_before)
            move_market(hour, bar)
            inject_faults()
            faulted = run(position_manager)
            check_invariants(hour, manager_turn_faulted=faulted)

        fake.clear_faults()  # those no request took
        settle_account.run(spark, testnet)
        for _ in range(2):
            position_manager.run(spark, testnet)
        position, _entry = fake.position("binance", "BTCUSDT")
        book = fake.book("binance")
        ours = {o.client_order_id: o for o in spark.table("trading.orders").where("signal_id LIKE 'safe-fc-%'").collect()}
        assert position == 0 and not [o.client_id for o in book.orders.values() if o.is_open]
        assert not [o for o in ours.values() if o.status in ("new", "open", "unknown", "canceling")]
        closed = spark.table("trading.positions_closed").where("signal_id LIKE 'safe-fc-%'").collect()
        assert sum(c.net_pnl for c in closed) == fake.wallet_balance("binance") - start_balance  # to the cent
        print(f"campaign: {len(planted)} signals, {len(closed)} trades closed "
              f"({Counter(c.exit_reason for c in closed)}), faults injected {dict(injected)}, "
              f"job runs failed {dict(failures)}")
        assert len(closed) >= 2 and sum(injected.values()) >= 10
    finally:  # BTCUSDT klines at this market would void a later test's plan
        spark.sql(f"DELETE FROM silver.unified_klines WHERE exchange = 'binance' AND symbol = 'BTCUSDT' "
                  f"AND kafka_partition = {CAMPAIGN_KLINES_PARTITION}")
