"""Job runs and the monitor: every run of a job is one gold.job_runs row (succeeded with its
counts, failed with its error, the error still raised), and `cryptobot monitor`'s sections show
the lake's state: signals by status, an open position priced at the market's last 1m close
with its unrealised P&L and working orders, the stream's committed Kafka offsets, freshness,
quarantine counts and each job's last run; as tables or JSON."""
import json
from decimal import Decimal as D

import pytest

from common.job_runs import RunRecords, run_recorded
from streaming import signals_monitor
from tests.spark.rows import append

SYMBOL = "MONUSDT"
T0 = 1_788_000_000_000  # a time of its own in the shared lake


class Counts:
    rows_in, rows_out = 7, 3


def job_runs(spark, job):
    return spark.table("gold.job_runs").where(f"job = '{job}'").orderBy("started_at").collect()


def test_every_run_of_a_job_is_recorded_with_its_outcome(spark, app_config, initialized_lake):
    assert run_recorded(spark, app_config, "monitor_test_job", Counts).rows_out == 3

    def fails():
        raise RuntimeError("exchange said no\nsecond line")

    with pytest.raises(RuntimeError, match="exchange said no"):
        run_recorded(spark, app_config, "monitor_test_job", fails, details="try 2")
    first, second = job_runs(spark, "monitor_test_job")
    assert (first.status, first.rows_in, first.rows_out, first.error) == ("succeeded", 7, 3, None)
    assert (second.status, second.error, second.details) == ("failed", "RuntimeError: exchange said no", "try 2")
    assert second.ended_at >= second.started_at and second.duration_s >= 0


def test_runs_recorded_together_are_one_append_written_when_the_block_ends_even_on_failure(
        spark, app_config, initialized_lake):
    def versions():
        return spark.sql("DESCRIBE HISTORY gold.job_runs").count()

    def engine_down():
        raise RuntimeError("engine down")

    before = versions()
    with pytest.raises(RuntimeError, match="engine down"):
        with RunRecords(spark, app_config) as records:
            records.run("monitor_test_scorer", Counts)
            assert versions() == before  # nothing written while the block runs
            records.run("monitor_test_engine", engine_down)
    assert versions() == before + 1
    assert [r.status for r in job_runs(spark, "monitor_test_scorer")] == ["succeeded"]
    assert [(r.status, r.error) for r in job_runs(spark, "monitor_test_engine")] == [
        ("failed", "RuntimeError: engine down")]


def section(sections, title_start):
    return next(s for s in sections if s.title.startswith(title_start))


@pytest.fixture
def monitored_position(spark, initialized_lake):
    """An open position with a working order, removed afterwards: the lake is shared, and the
    position manager's reconciliation in later tests would see it as a difference."""
    yield
    spark.sql("DELETE FROM trading.positions_open WHERE position_id = 'mon-pos'")
    spark.sql("DELETE FROM trading.orders WHERE order_id = 'mon-o1'")


def test_the_monitor_shows_positions_prices_health_and_job_runs(spark, app_config, monitored_position):
    append(spark, "trading.positions_open", [{
        "position_id": "mon-pos", "signal_id": "mon-signal", "exchange": "binance", "symbol": SYMBOL,
        "interval": "15m", "direction": "long", "status": "tp1_done", "entry_price": D(100), "quantity": D(2),
        "remaining_quantity": D(1), "sl_price": D("100.08"), "tp1_price": D(104), "tp2_price": D(108),
        "tp1_hit": True, "sl_at_breakeven": True, "mode": "paper"}])
    append(spark, "trading.orders", [{
        "order_id": "mon-o1", "client_order_id": "cb-mon-tp2-1", "signal_id": "mon-signal", "exchange": "binance",
        "symbol": SYMBOL, "leg": "tp2", "version": 1, "side": "sell", "order_type": "limit", "reduce_only": True,
        "price": D(108), "amount": D(1), "filled": D(0), "status": "open", "mode": "paper"}])
    append(spark, "silver.unified_klines", [
        {"exchange": "binance", "symbol": SYMBOL, "interval": "1m", "open_time_ms": T0 + n * 60_000,
         "close_time_ms": T0 + n * 60_000 + 59_999, "open": 105.0, "high": 106.0, "low": 104.0,
         "close": 105.0 + n / 2, "volume": 1.0} for n in range(3)])  # the last close: 106
    append(spark, "gold.signals_all", [{
        "signal_id": "mon-signal", "strategy": "smc", "exchange": "binance", "symbol": SYMBOL, "interval": "15m",
        "direction": "long", "status": "executed", "trigger_bar_time_ms": T0, "known_at_ms": T0, "score": 81.5}])
    run_recorded(spark, app_config, "monitor_test_job", Counts)

    sections = signals_monitor.collect(spark, app_config, now_ms=T0 + 3 * 60_000 + 30 * 60_000)

    position = next(dict(zip(s.columns, r)) for s in [section(sections, "Open positions")] for r in s.rows
                    if r[0] == "mon-pos")
    assert (position["last_price"], position["unrealised_pnl"]) == (D(106), D(6))  # 1 left x (106 - 100)
    orders = section(sections, "Working orders")
    assert any(r[0] == "mon-signal" and r[2] == "tp2" for r in orders.rows)
    executed = [r for r in section(sections, "Signals by status").rows if r[0] == "executed"]
    assert executed and executed[0][1] >= 1
    fresh = [r for r in section(sections, "Freshness").rows if r[1] == SYMBOL]
    assert fresh == [("binance", SYMBOL, "1m", 3, "2026-08-29 10:42", 30.0)]
    runs = {r[0]: r for r in section(sections, "Last run of every job").rows}
    assert runs["monitor_test_job"][1] == "succeeded" and runs["monitor_test_job"][-1] >= 3
    lag = section(sections, "Kafka consumer lag")
    assert lag.rows or lag.note  # no broker in this test: said so, not a crash

    as_json = json.loads(signals_monitor.render(sections, "json"))
    assert [r["unrealised_pnl"] for r in as_json["Open positions"]["rows"] if r["position_id"] == "mon-pos"] == ["6"]
    text = signals_monitor.render(sections)
    assert "== Open positions ==" in text and "mon-pos" in text


def test_committed_offsets_are_read_from_a_kafka_querys_checkpoint(spark, tmp_path):
    checkpoint = tmp_path / "checkpoint"
    (checkpoint / "offsets").mkdir(parents=True)
    (checkpoint / "commits").mkdir()
    for batch, offset in ((0, 40), (1, 95), (2, 120)):  # batch 2 planned, not committed
        (checkpoint / "offsets" / str(batch)).write_text(
            'v1\n{"batchWatermarkMs":0,"batchTimestampMs":1}\n'
            '{"klines.binance":{"0":%d,"1":%d}}' % (offset, offset + 1))
    for batch in (0, 1):
        (checkpoint / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}')
    assert signals_monitor.committed_offsets(spark, str(checkpoint)) == {0: 95, 1: 96}
    assert signals_monitor.committed_offsets(spark, str(tmp_path / "none")) == {}
