"""The execution engine and the position manager on the paper exchange, minute by minute:
a confirmed signal's entry placed once, filled, protected by a stop and two targets, TP1 then
the stop to breakeven under a new client id, TP2 closing the position; positions_closed and
daily_pnl reconciling to the cent with the paper exchange's wallet. And the guards: the kill
switch and the daily loss limit."""
from decimal import Decimal as D

import pytest
from pyspark.sql import functions as F

from common.config import load_config
from common.trade.orders import client_order_id
from common.trading import execution_engine, position_manager
from common.exchange.account import TradingAccount, build_gateway
from common.trading_config import read_trading_config
from tests.spark.rows import append

SYMBOL = "PAPUSDT"  # this test's own: the lake is shared
MODULE_SYMBOLS = (SYMBOL, "PAPBUSDT", "PAPCUSDT", "PAPDUSDT", "PAPEUSDT", "PAPFUSDT", "PAPGUSDT", "GHOSTUSDT",
                  "OTHERUSDT", "TESTNUSDT")
SIGNAL = "paper-signal-1"
PAPER = TradingAccount("binance", "paper", "paper")
H, M = 3_600_000, 60_000
T0 = 1_786_924_800_000  # 2026-08-17 00:00 UTC


@pytest.fixture(scope="module")
def config(app_env, initialized_lake, tmp_path_factory):
    return load_config(env={**app_env, "CRYPTOBOT_PATHS__DATA_DIR": str(tmp_path_factory.mktemp("paper-data"))})


@pytest.fixture(scope="module")
def trading_symbol(spark, initialized_lake):
    def set_param(name, value):
        spark.sql(f"UPDATE gold.trading_config SET param_value = '{value}' WHERE param_name = '{name}'")

    set_param("trading_symbols", f'["{SYMBOL}"]')
    yield set_param
    set_param("trading_symbols", '["BTCUSDT", "ETHUSDT"]')
    set_param("trading_enabled", "true")
    # The lake is shared: a position or working order left here would take room (positions,
    # exposure) from a later test's trades and be managed by its position manager.
    for table in ("trading.positions_open", "trading.orders"):
        spark.sql(f"DELETE FROM {table} WHERE symbol IN ({', '.join(repr(s) for s in MODULE_SYMBOLS)})")


def minute(n, o, h, l, start_ms=T0):
    open_ms = start_ms + n * M
    return {"exchange": "binance", "symbol": SYMBOL, "exchange_symbol": SYMBOL, "interval": "1m",
            "open_time_ms": open_ms, "close_time_ms": open_ms + M - 1, "open": float(o), "high": float(h),
            "low": float(l), "close": (h + l) / 2, "volume": 1.0, "schema_version": 1, "kafka_partition": 0,
            "kafka_offset": n}


def latest_version(spark, table):
    return spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first().version


def orders(spark):
    return {(r.leg, r.version): r for r in spark.table("trading.orders").where(f"signal_id = '{SIGNAL}'").collect()}


def test_a_confirmed_signal_traded_from_entry_to_tp2(spark, config, trading_symbol):
    append(spark, "gold.signals_all", [{
        "signal_id": SIGNAL, "strategy": "smc", "exchange": "binance", "symbol": SYMBOL, "interval": "1h",
        "direction": "long", "status": "confirmed", "trigger_bar_time_ms": T0, "known_at_ms": T0 + H - 1,
        "entry_price": 100.0, "sl_price": 98.0, "tp1_price": 104.0, "tp2_price": 108.0, "score": 75.0}])
    append(spark, "silver.unified_klines", [minute(60, 101, 101.5, 100.5), minute(61, 101, 101.2, 100.6)])

    assert execution_engine.run(spark, config).placed == 1
    entry = orders(spark)[("entry", 0)]
    assert (entry.status, entry.side, entry.price, entry.amount) == ("open", "buy", D(100), D(50))  # 1 % of 10 000 / 2
    assert entry.client_order_id == client_order_id(SIGNAL, "entry", 0)
    assert spark.table("gold.signals_all").where(f"signal_id = '{SIGNAL}'").first().status == "executed"
    assert execution_engine.run(spark, config).placed == 0  # again: nothing twice
    assert set(orders(spark)) == {("entry", 0), ("sl", 0)}  # the entry, and the stop placed with it
    assert orders(spark)[("sl", 0)].close_position

    # an entry in a market this exchange cannot serve: its failure must not stop the others
    append(spark, "gold.signals_all", [{
        "signal_id": "paper-ghost", "strategy": "smc", "exchange": "binance", "symbol": "GHOSTUSDT", "interval": "1h",
        "direction": "long", "status": "executed", "trigger_bar_time_ms": T0, "known_at_ms": T0 + H - 1,
        "entry_price": 10.0, "sl_price": 9.0, "tp1_price": 11.0, "tp2_price": 12.0}])
    append(spark, "trading.orders", [{
        "order_id": "cb-ghost-entry-0", "client_order_id": "cb-ghost-entry-0", "signal_id": "paper-ghost",
        "exchange": "binance", "symbol": "GHOSTUSDT", "leg": "entry", "version": 0, "side": "buy",
        "order_type": "limit", "reduce_only": False, "price": D(10), "amount": D(5), "filled": D(0), "fee": D(0),
        "status": "open", "mode": "paper", "updated_ms": T0 + 61 * M}])

    append(spark, "silver.unified_klines", [minute(62, 100.5, 100.7, 99.8)])  # fills the entry at 100
    managed = position_manager.run(spark, config)
    assert managed.actions["positions that failed (see the log)"] == 1  # the ghost, and only it
    placed = orders(spark)
    assert placed[("entry", 0)].status == "closed"
    exits = {k: (o.order_type, o.amount, o.price, o.stop_price, o.status) for k, o in placed.items() if k[0] != "entry"}
    assert exits == {
        ("sl", 0): ("stop_market", D(0), None, D(98), "open"),  # placed with the entry: closes whatever is held
        ("tp1", 0): ("limit", D(25), D(104), None, "open"), ("tp2", 0): ("limit", D(25), D(108), None, "open")}
    position = spark.table("trading.positions_open").where(f"signal_id = '{SIGNAL}'").first()
    assert (position.status, position.remaining_quantity, position.tp1_hit) == ("open", D(50), False)

    append(spark, "silver.unified_klines", [minute(63, 101, 104.5, 100.9)])  # TP1
    position_manager.run(spark, config)
    after_tp1 = orders(spark)
    assert (after_tp1[("tp1", 0)].status, after_tp1[("sl", 0)].status) == ("closed", "canceled")
    assert (after_tp1[("sl", 1)].stop_price, after_tp1[("sl", 1)].amount) == (D("100.08"), D(25))  # breakeven
    position = spark.table("trading.positions_open").where(f"signal_id = '{SIGNAL}'").first()
    assert (position.status, position.remaining_quantity, position.sl_at_breakeven) == ("tp1_done", D(25), True)
    # A turn with no new kline finds nothing changed, and writes nothing.
    versions = {t: latest_version(spark, t) for t in ("trading.orders", "trading.positions_open")}
    position_manager.run(spark, config)
    assert {t: latest_version(spark, t) for t in versions} == versions

    append(spark, "silver.unified_klines", [minute(64, 105, 108.2, 104.8)])  # TP2
    position_manager.run(spark, config)
    final = orders(spark)
    assert (final[("tp2", 0)].status, final[("sl", 1)].status) == ("closed", "canceled")
    assert spark.table("trading.positions_open").where(f"signal_id = '{SIGNAL}'").count() == 0
    closed = spark.table("trading.positions_closed").where(f"signal_id = '{SIGNAL}'").first()
    # 25 x 4 + 25 x 8 = 300 gross; fees 50 x 100 + 25 x 104 + 25 x 108, at 0.02 %: 2.06
    assert (closed.realized_pnl, closed.fees, closed.net_pnl, closed.exit_reason) == (
        D(300), D("2.06"), D("297.94"), "take_profit_2")
    assert closed.r_multiple == pytest.approx(2.9794)
    day = spark.table("trading.daily_pnl").where("mode = 'paper' AND exchange = 'binance' "
                                                 "AND pnl_date = DATE'2026-08-17'").first()
    assert (day.trades, day.wins, day.net_pnl, day.equity_end) == (1, 1, D("297.94"), D("10297.94"))
    wallet = build_gateway(config, read_trading_config(spark)).equity()
    assert wallet == D("10297.94")  # the table and the exchange agree to the cent
    position_manager.run(spark, config)  # nothing left to manage: nothing changes
    assert spark.table("trading.positions_closed").where(f"signal_id = '{SIGNAL}'").count() == 1
    moves = [(r.from_status, r.to_status) for r in spark.table("trading.audit_log")
             .where(F.col("entity_id") == SIGNAL).collect()]
    assert ("confirmed", "executed") in moves and ("open", "closed") in moves


def test_guards_halt_new_entries(spark, config, trading_symbol):
    append(spark, "gold.signals_all", [{
        "signal_id": "paper-signal-2", "strategy": "smc", "exchange": "binance", "symbol": SYMBOL, "interval": "1h",
        "direction": "long", "status": "confirmed", "trigger_bar_time_ms": T0, "known_at_ms": T0 + H - 1,
        "entry_price": 100.0, "sl_price": 98.0, "tp1_price": 104.0, "tp2_price": 108.0}])
    trading_symbol("trading_enabled", "false")
    assert execution_engine.run(spark, config).halted == "trading_enabled = false (kill switch)"
    trading_symbol("trading_enabled", "true")
    append(spark, "trading.positions_closed", [{
        "position_id": "paper-loss", "signal_id": "paper-loss", "exchange": "binance", "symbol": "OTHERUSDT",
        "direction": "long", "entry_price": D(100), "exit_price": D(90), "quantity": D(70), "realized_pnl": D(-700),
        "fees": D(0), "net_pnl": D(-700), "exit_reason": "stop_loss", "mode": "paper",
        "close_date": __import__("datetime").date(2026, 8, 17)}])
    halted = execution_engine.run(spark, config).halted
    assert halted.startswith("daily loss limit: -402.06 realised today")  # 297.94 - 700
    assert spark.table("trading.orders").where("signal_id = 'paper-signal-2'").count() == 0


def test_an_order_sent_by_a_run_that_died_is_found_and_protected_not_sent_again(spark, config, trading_symbol):
    """The crash between the exchange accepting the entry and our record of it: the restarted
    engine finds the order by its client id, records it, and the manager protects it."""
    from common.trade.orders import OrderRequest

    signal_id, symbol = "paper-signal-3", "PAPBUSDT"
    day = T0 + 2 * 86_400_000  # a day of its own: the guards' test booked a loss on T0's
    trading_symbol("trading_symbols", f'["{symbol}"]')
    append(spark, "gold.signals_all", [{
        "signal_id": signal_id, "strategy": "smc", "exchange": "binance", "symbol": symbol, "interval": "1h",
        "direction": "short", "status": "confirmed", "trigger_bar_time_ms": day, "known_at_ms": day + H - 1,
        "entry_price": 50.0, "sl_price": 51.0, "tp1_price": 48.0, "tp2_price": 46.0}])
    bars = [{**minute(n, 49.5, 49.8, 49.4, day), "symbol": symbol} for n in (60, 61)]
    append(spark, "silver.unified_klines", bars)
    gateway = build_gateway(config, read_trading_config(spark))
    gateway.set_clock(symbol, day + 62 * M - 1)
    gateway.set_rules(symbol, D(50))
    cid = client_order_id(signal_id, "entry", 0)
    gateway.place_order(OrderRequest(cid, symbol, "sell", "limit", D(100), D(50)))  # ... and the run died here

    result = execution_engine.run(spark, config)
    assert result.placed == 0  # not sent again
    recorded = spark.table("trading.orders").where(f"signal_id = '{signal_id}'").collect()
    assert [(r.client_order_id, r.status, r.amount) for r in recorded] == [(cid, "open", D(100))]
    assert spark.table("gold.signals_all").where(f"signal_id = '{signal_id}'").first().status == "executed"

    append(spark, "silver.unified_klines", [{**minute(62, 49.9, 50.2, 49.8, day), "symbol": symbol}])  # sells at 50
    position_manager.run(spark, config)
    legs = {r.leg: (r.status, r.side, r.amount) for r in spark.table("trading.orders")
            .where(f"signal_id = '{signal_id}'").collect()}
    assert legs == {"entry": ("closed", "sell", D(100)), "sl": ("open", "buy", D(100)),
                    "tp1": ("open", "buy", D(50)), "tp2": ("open", "buy", D(50))}
    assert len(build_gateway(config, read_trading_config(spark)).open_orders(symbol)) == 3


def test_the_manager_records_what_the_exchange_holds_that_we_do_not_track(spark, config, trading_symbol):
    from common.trade.orders import OrderRequest

    trading_symbol("trading_symbols", f'["{SYMBOL}"]')
    gateway = build_gateway(config, read_trading_config(spark))
    stray = "cb-stray-tp1-0"  # ours by its prefix, in no row of trading.orders
    gateway.place_order(OrderRequest(stray, SYMBOL, "sell", "limit", D(1), D(500), reduce_only=True))
    append(spark, "trading.positions_open", [{
        "position_id": "paper-phantom", "signal_id": "paper-phantom", "exchange": "binance", "symbol": SYMBOL,
        "direction": "long", "status": "open", "entry_price": D(100), "quantity": D(7), "remaining_quantity": D(7),
        "sl_price": D(90), "tp1_hit": False, "sl_at_breakeven": False, "mode": "paper"}])
    try:
        assert position_manager.run(spark, config).actions["differences with the exchange"] == 2
        found = {(r.entity_id, r.to_status, r.reason) for r in spark.table("trading.audit_log")
                 .where(F.col("to_status").isin("mismatch", "untracked")).collect()}
        assert (f"binance:{SYMBOL}", "mismatch", "the exchange holds 0, our open positions 7") in found
        assert (stray, "untracked", "open on the exchange, not active in trading.orders") in found
        before = spark.table("trading.audit_log").count()
        position_manager.run(spark, config)  # the same differences: recorded once
        assert spark.table("trading.audit_log").count() == before
    finally:
        spark.sql("DELETE FROM trading.positions_open WHERE position_id = 'paper-phantom'")


def test_a_confirmed_signal_the_market_has_left_is_expired_not_sent(spark, config, trading_symbol):
    """A confirmed signal can wait hours for its turn (one trade per symbol). When the engine
    comes to it, a market that has since reached its stop (the setup failed, and the stop would
    trigger at once) or its TP1 (the move is gone) expires it, as the scorer would have, and
    no order is sent; a signal the market has not left is traded."""
    day = T0 + 6 * 86_400_000
    symbols = ("PAPFUSDT", "PAPGUSDT")
    trading_symbol("trading_symbols", '["PAPFUSDT", "PAPGUSDT"]')
    trading_symbol("max_open_positions", "5")
    try:
        append(spark, "gold.signals_all", [{
            "signal_id": f"paper-left-{n}", "strategy": "smc", "exchange": "binance", "symbol": symbols[n % 2],
            "interval": "1h", "direction": direction, "status": "confirmed", "trigger_bar_time_ms": day,
            "known_at_ms": day + H - 1, "entry_price": 100.0, "sl_price": sl, "tp1_price": tp1, "tp2_price": tp2}
            for n, (direction, sl, tp1, tp2) in enumerate([("long", 98.0, 104.0, 108.0), ("short", 102.0, 96.0, 92.0),
                                                           ("long", 97.0, 104.0, 108.0)])])
        # PAPF went down to 97.5 (through signal 0's stop, above signal 2's); PAPG down to 96 (signal 1's TP1)
        append(spark, "silver.unified_klines", [
            {**minute(60, 100.5, 101, 97.5, start_ms=day), "symbol": "PAPFUSDT", "exchange_symbol": "PAPFUSDT"},
            {**minute(61, 99, 100.2, 99, start_ms=day), "symbol": "PAPFUSDT", "exchange_symbol": "PAPFUSDT"},
            {**minute(60, 99.5, 100, 96, start_ms=day), "symbol": "PAPGUSDT", "exchange_symbol": "PAPGUSDT"}])
        result = execution_engine.run(spark, config)
        statuses = {r.signal_id: (r.status, r.status_reason) for r in spark.table("gold.signals_all")
                    .where("signal_id LIKE 'paper-left-%'").collect()}
        assert statuses["paper-left-0"] == ("expired", "entry passed: price reached the stop loss before the order")
        assert statuses["paper-left-1"] == ("expired", "entry passed: price reached TP1 before the order")
        assert statuses["paper-left-2"][0] == "executed" and result.placed == 1
        sent = {r.signal_id for r in spark.table("trading.orders").where("signal_id LIKE 'paper-left-%'").collect()}
        assert sent == {"paper-left-2"}
    finally:
        trading_symbol("max_open_positions", "3")


def test_a_testnet_position_open_refuses_trading_on_paper(spark, config, trading_symbol):
    """Another account's open position: nobody's to manage on paper, and nothing of paper's may
    be decided beside it. Both jobs refuse, naming it and the command that settles it."""
    from common.trading.trading_store import AccountSwitchRefused

    append(spark, "trading.positions_open", [{
        "position_id": "testnet-open", "signal_id": "testnet-open", "exchange": "binance", "symbol": "TESTNUSDT",
        "direction": "long", "status": "open", "entry_price": D(100), "quantity": D(500), "remaining_quantity": D(500),
        "sl_price": D(90), "tp1_hit": False, "sl_at_breakeven": False, "mode": "testnet", "account": "key-0123"}])
    try:
        for job in (execution_engine, position_manager):
            with pytest.raises(AccountSwitchRefused, match="1 open positions on binance testnet account key-0123"):
                job.run(spark, config)
    finally:
        spark.sql("DELETE FROM trading.positions_open WHERE position_id = 'testnet-open'")


def test_a_run_records_every_entrys_intent_before_it_sends_any(spark, config, trading_symbol):
    """Two confirmed signals in one run: both intents are on record (`new`) when the first order
    reaches the exchange, and both answers are recorded after."""
    symbols, day = ("PAPDUSDT", "PAPEUSDT"), T0 + 4 * 86_400_000
    trading_symbol("trading_symbols", str(list(symbols)).replace("'", '"'))
    paper = "exchange = 'binance' AND mode = 'paper'"
    paper_busy = (spark.table("trading.positions_open").where(paper).count() + spark.table("trading.orders").where(
        f"{paper} AND leg = 'entry' AND status IN ('new', 'unknown', 'open') AND filled = 0").count())
    trading_symbol("max_open_positions", str(paper_busy + 2))
    signal_ids = [f"paper-batch-{symbol}" for symbol in symbols]
    cids = [client_order_id(s, "entry", 0) for s in signal_ids]
    append(spark, "gold.signals_all", [{
        "signal_id": signal_id, "strategy": "smc", "exchange": "binance", "symbol": symbol, "interval": "1h",
        "direction": "long", "status": "confirmed", "trigger_bar_time_ms": day, "known_at_ms": day + H - 1,
        "entry_price": 100.0, "sl_price": 98.0, "tp1_price": 104.0, "tp2_price": 108.0}
        for signal_id, symbol in zip(signal_ids, symbols)])
    append(spark, "silver.unified_klines", [{**minute(n, 101, 101.5, 100.5, day), "symbol": symbol}
                                            for symbol in symbols for n in (60, 61)])
    gateway = build_gateway(config, read_trading_config(spark))
    recorded_at_send = []  # what trading.orders held of the two entries at each send
    send = gateway.place_order

    def place_order_watched(request):
        recorded_at_send.append({r.client_order_id: r.status for r in spark.table("trading.orders")
                                 .where(F.col("client_order_id").isin(cids)).collect()})
        return send(request)

    gateway.place_order = place_order_watched
    try:
        assert execution_engine.run(spark, config, gateway=gateway).placed == 2
        assert recorded_at_send[0] == dict.fromkeys(cids, "new")
        assert len(recorded_at_send) == 4  # each entry, then its stop
        stored = {r.client_order_id: r.status for r in spark.table("trading.orders")
                  .where(F.col("client_order_id").isin(cids)).collect()}
        assert stored == dict.fromkeys(cids, "open")
        assert {r.status for r in spark.table("gold.signals_all").where(F.col("signal_id").isin(signal_ids))
                .collect()} == {"executed"}
    finally:
        trading_symbol("max_open_positions", "3")


def test_an_orders_record_only_moves_forward(spark, config):
    """Two writers with different snapshots of one order (the engine and the manager as their
    own applications): the later write of an older snapshot changes nothing."""
    from dataclasses import replace

    from common.trade.orders import OrderRequest
    from common.trading.trading_store import intent_row, read_orders, write_orders

    cid = client_order_id("paper-forward", "entry", 0)
    intent = intent_row(OrderRequest(cid, "PAPUSDT", "buy", "limit", D(10), D(100)), "paper-forward", PAPER,
                        "entry", 0, T0)

    def stored():
        row = read_orders(spark, config, f"client_order_id = '{cid}'")[0]
        return row.status, row.filled

    try:
        write_orders(spark, config, [intent])
        open_half = replace(intent, status="open", filled=D(5), exchange_order_id="x1", updated_ms=T0 + M)
        write_orders(spark, config, [open_half])
        assert stored() == ("open", D(5))
        write_orders(spark, config, [intent])  # the intent again (a stale writer): not back to new
        write_orders(spark, config, [replace(intent, status="unknown")])  # nor to unknown
        write_orders(spark, config, [replace(open_half, filled=D(2))])  # nor a smaller fill
        assert stored() == ("open", D(5))
        write_orders(spark, config, [replace(open_half, status="closed", filled=D(10))])
        assert stored() == ("closed", D(10))
        write_orders(spark, config, [open_half])
        write_orders(spark, config, [replace(open_half, status="canceled", filled=D(10))])
        assert stored() == ("closed", D(10))  # final: neither reopened nor turned into another ending
    finally:
        spark.sql(f"DELETE FROM trading.orders WHERE client_order_id = '{cid}'")


def test_orders_written_at_once_by_the_engine_and_the_manager_are_all_recorded(spark, config):
    """As their own applications the execution engine and the position manager MERGE into
    trading.orders at the same time: the one that loses the race writes again, nothing fails."""
    import threading

    from common.trade.orders import OrderRequest
    from common.trading.trading_store import intent_row, read_orders, write_orders

    def rows(writer: str, n: int):
        cid = client_order_id(f"paper-race-{writer}-{n}", "entry", 0)
        return [intent_row(OrderRequest(cid, "PAPUSDT", "buy", "limit", D(1), D(100)), f"paper-race-{writer}-{n}",
                           PAPER, "entry", 0, T0)]

    errors = []

    def writer(name: str):
        try:
            for n in range(4):
                write_orders(spark, config, rows(name, n))
        except Exception as error:  # noqa: BLE001 - the test's finding
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("engine", "manager")]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert errors == []
        assert len(read_orders(spark, config, "signal_id LIKE 'paper-race-%'")) == 8
    finally:
        spark.sql("DELETE FROM trading.orders WHERE signal_id LIKE 'paper-race-%'")
