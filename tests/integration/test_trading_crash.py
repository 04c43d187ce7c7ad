"""kill -9 of the execution engine right after the exchange accepted an entry and before it
was recorded: the restarted engine places nothing twice, finds and records the one order, and
the position manager protects it once it fills."""
import json
import signal
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

from common.trade.orders import client_order_id
from common.exchange.paper import FAULT_ENV
from tests.spark.rows import append

CRYPTOBOT = str(Path(sys.executable).parent / "cryptobot")
SYMBOL, SIGNAL = "CRASHUSDT", "crash-signal-1"
H, M = 3_600_000, 60_000
T0 = 1_787_184_000_000  # 2026-08-20 00:00 UTC


def minute(n, o, h, l):
    open_ms = T0 + n * M
    return {"exchange": "binance", "symbol": SYMBOL, "exchange_symbol": SYMBOL, "interval": "1m",
            "open_time_ms": open_ms, "close_time_ms": open_ms + M - 1, "open": o, "high": h, "low": l,
            "close": (h + l) / 2, "volume": 1.0, "schema_version": 1, "kafka_partition": 0, "kafka_offset": n}


def test_engine_killed_after_the_exchange_accepted_the_entry(spark, app_env, initialized_lake, tmp_path):
    env = {**app_env, "CRYPTOBOT_PATHS__DATA_DIR": str(tmp_path / "data")}
    spark.sql(f"""UPDATE gold.trading_config SET param_value = '["{SYMBOL}"]' WHERE param_name = 'trading_symbols'""")
    try:
        append(spark, "gold.signals_all", [{
            "signal_id": SIGNAL, "strategy": "smc", "exchange": "binance", "symbol": SYMBOL, "interval": "1h",
            "direction": "long", "status": "confirmed", "trigger_bar_time_ms": T0, "known_at_ms": T0 + H - 1,
            "entry_price": 20.0, "sl_price": 19.5, "tp1_price": 21.0, "tp2_price": 22.0}])
        append(spark, "silver.unified_klines", [minute(60, 20.4, 20.5, 20.3), minute(61, 20.3, 20.4, 20.2)])

        killed = subprocess.run([CRYPTOBOT, "execute"], env={**env, FAULT_ENV: "kill_after_accept"},
                                capture_output=True, text=True, timeout=300)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        paper = json.loads((tmp_path / "data" / "paper_exchange" / "binance.json").read_text())
        cid = client_order_id(SIGNAL, "entry", 0)
        assert list(paper["orders"]) == [cid]  # the exchange has it ...
        rows = spark.table("trading.orders").where(f"signal_id = '{SIGNAL}'").collect()
        stop = client_order_id(SIGNAL, "sl", 0)  # ... our record only the intents: the entry and its stop
        assert sorted((r.client_order_id, r.status) for r in rows) == sorted([(cid, "new"), (stop, "new")])

        again = subprocess.run([CRYPTOBOT, "execute"], env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
        paper = json.loads((tmp_path / "data" / "paper_exchange" / "binance.json").read_text())
        assert list(paper["orders"]) == [cid, stop]  # exactly one entry on the exchange, and now its stop
        rows = spark.table("trading.orders").where(f"signal_id = '{SIGNAL}'").collect()
        assert sorted((r.client_order_id, r.status, r.amount) for r in rows) == sorted(
            [(cid, "open", D(200)), (stop, "open", D(0))])  # 100 / 0.5; the stop closes whatever is held

        append(spark, "silver.unified_klines", [minute(62, 20.1, 20.2, 19.9)])  # the entry fills at 20
        managed = subprocess.run([CRYPTOBOT, "manage"], env=env, capture_output=True, text=True, timeout=300)
        assert managed.returncode == 0, managed.stderr[-2000:]
        legs = {r.leg: (r.status, r.amount) for r in spark.table("trading.orders")
                .where(f"signal_id = '{SIGNAL}'").collect()}
        assert legs == {"entry": ("closed", D(200)), "sl": ("open", D(0)), "tp1": ("open", D(100)),
                        "tp2": ("open", D(100))}
    finally:  # the lake is shared: leave no position behind for the other tests' managers
        for table in ("trading.orders", "trading.positions_open"):
            spark.sql(f"DELETE FROM {table} WHERE signal_id = '{SIGNAL}'")
        spark.sql("""UPDATE gold.trading_config SET param_value = '["BTCUSDT", "ETHUSDT"]'
                     WHERE param_name = 'trading_symbols'""")
