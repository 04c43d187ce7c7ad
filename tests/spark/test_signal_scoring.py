"""Scanner and scorer on hand-written analytics rows in real Delta tables: setups inserted once
with their lineage, scored with the components computed by hand, a watchlisted signal
promoted when its zone and the sentiment improve, a setup the market has left expired, every
move in the audit log once, and re-runs that change nothing."""
import json
from datetime import datetime

import pytest
from pyspark.sql import functions as F

from common.config import load_config
from common.scoring import COMPONENTS, calibrate
from common.trading import statistical_scorer
from streaming import signal_scanner
from tests.spark.rows import append

SYMBOL = "SIGUSDT"  # this test's own: the lake is shared
H = 3_600_000
T0 = 1_786_924_800_000  # 2026-08-17 00:00 UTC, a whole hour


@pytest.fixture(scope="module")
def config(app_env, initialized_lake):
    return load_config(env={**app_env, "CRYPTOBOT_EXCHANGES__INTERVALS": "1h,4h"})


def zone(local_id, zone_type, known_h, low, high, poc, touches=0, sweeps=0, rejections=0, pool=False,
         quality=60.0, status="active", version=1, touched=False, swept=False):
    return {"zone_id": f"binance:{SYMBOL}:1h:{local_id}", "exchange": "binance", "symbol": SYMBOL, "interval": "1h",
            "zone_type": zone_type, "is_liquidity_pool": pool, "zone_low": low, "zone_high": high, "poc_price": poc,
            "touches": touches, "rejections": rejections, "sweeps": sweeps, "breaks": 0, "status": status,
            "quality": quality, "atr": 1.5, "known_at_ms": T0 + known_h * H - 1, "version": version,
            "touched_now": touched, "swept_now": swept}


def bar(hour, high, low):
    open_ms = T0 + hour * H
    return {"exchange": "binance", "symbol": SYMBOL, "exchange_symbol": SYMBOL, "ccxt_symbol": "SIG/USDT:USDT",
            "interval": "1h", "open_time_ms": open_ms, "close_time_ms": open_ms + H - 1,
            "open_time": datetime.utcfromtimestamp(open_ms / 1000), "open": low, "high": high, "low": low,
            "close": (high + low) / 2, "volume": 1.0, "source": "test", "schema_version": 1,
            "kafka_topic": "test", "kafka_partition": 0, "kafka_offset": hour}


def signals(spark):
    return {r.strategy: r for r in spark.table("gold.signals_all").where(f"symbol = '{SYMBOL}'").collect()}


def audit(spark):
    ids = [r.signal_id for r in spark.table("gold.signals_all").where(f"symbol = '{SYMBOL}'").collect()]
    return sorted((r.from_status or "", r.to_status) for r in spark.table("trading.audit_log")
                  .where(F.col("entity_id").isin(ids)).collect())


def test_scan_then_score_then_rescore(spark, config):
    append(spark, "gold.bos_warnings", [{
        "event_id": "sig-e1", "exchange": "binance", "symbol": SYMBOL, "interval": "1h", "event_type": "BOS",
        "direction": "bullish", "level": 99.0, "bar_time_ms": T0 + 9 * H, "bar_close": 99.5, "distance_atr": 0.8,
        "atr": 1.5, "known_at_ms": T0 + 10 * H - 1}])
    append(spark, "gold.liquidity_zones", [
        zone("d", "demand", 5, 100.0, 102.0, 101.0), zone("d", "demand", 12, 100.0, 102.0, 101.0, touches=1, version=2,
                                                             touched=True),
        zone("s1", "supply", 6, 110.0, 111.0, 110.5), zone("s2", "supply", 7, 120.0, 121.0, 120.5),
        # a pool swept by the bar of hour 10: a short from 130.5, stop at 131 + 0.25 x 1.5
        zone("p", "supply", 4, 130.0, 131.0, 130.5, pool=True),
        zone("p", "supply", 11, 130.0, 131.0, 130.5, pool=True, touches=1, sweeps=1, version=2, touched=True,
             swept=True)])

    assert signal_scanner.run(spark, config) >= 2
    found = signals(spark)
    smc, liquidity = found["smc"], found["liquidity"]
    assert (smc.status, smc.direction, smc.entry_price, smc.bos_event_id) == ("pending", "long", 101.0, "sig-e1")
    assert json.loads(smc.lineage)["zone_id"] == f"binance:{SYMBOL}:1h:d"
    assert (liquidity.direction, liquidity.entry_price, liquidity.status) == ("short", 130.5, "pending")
    assert smc.htf_count == 1 and smc.htf_trend_agree == 0
    signal_scanner.run(spark, config)  # again: nothing new, nothing twice
    assert len(spark.table("gold.signals_all").where(f"symbol = '{SYMBOL}'").collect()) == 2

    # After the short's trigger (bar 10) the next bar reaches its stop; after the long's (bar 11)
    # one bar stays inside its range.
    append(spark, "silver.unified_klines", [bar(11, 131.5, 129.0), bar(12, 104.0, 100.5)])
    statistical_scorer.run(spark, config)
    found = signals(spark)
    smc = found["smc"]
    # zone 60 x .25 + bos (40 + 30 x .8 + 30 x (1 - 2/50)) x .2 + confluence 0 + sentiment 50 x .15
    # + behaviour (0.6 x 1/2 + 0.4 x 1/2) x 100 x .2
    assert smc.score == pytest.approx(51.06)
    assert (smc.score_zone_quality, smc.score_bos, smc.score_confluence, smc.score_sentiment,
            smc.score_zone_behaviour) == (60.0, pytest.approx(92.8), 0.0, 50.0, 50.0)
    assert smc.status == "watchlist"
    assert (smc.sl_price, smc.tp1_price, smc.tp2_price) == (pytest.approx(99.625), 110.0, 120.0)
    assert found["liquidity"].status == "expired"
    assert found["liquidity"].status_reason == "entry passed: price reached the stop loss before the order"

    # The zone rejected price (quality 90 now) and the sentiment turned bullish: promoted.
    append(spark, "gold.liquidity_zones", [zone("d", "demand", 13, 100.0, 102.0, 101.0, touches=1, rejections=1,
                                                quality=90.0, version=3)])
    append(spark, "gold.sentiment_scores", [{
        "exchange": "binance", "symbol": SYMBOL, "interval": "1h", "ts_ms": T0 + 12 * H,
        "sentiment_score": 100.0, "confidence": 1.0, "known_at_ms": T0 + 12 * H}])
    append(spark, "silver.unified_klines", [bar(13, 103.0, 101.5)])
    result = statistical_scorer.run(spark, config)
    smc = signals(spark)["smc"]
    # 90 x .25 + 92.8 x .2 + 0 + 100 x .15 + (0.6 x 1 + 0.4 x 1/2) x 100 x .2
    assert smc.score == pytest.approx(72.06) and smc.status == "confirmed"
    assert result.moves["watchlist->confirmed"] == 1

    moves = audit(spark)
    assert moves == sorted([("", "pending"), ("", "pending"), ("pending", "watchlist"),
                            ("pending", "expired"), ("watchlist", "confirmed")])
    statistical_scorer.run(spark, config)  # nothing open for this symbol any more: nothing moves
    assert audit(spark) == moves


def test_calibration_from_backtest_trades_is_stored_once_and_used(spark, config):
    from decimal import Decimal

    trades = []
    for n in range(40):
        wins = n % 2 == 0  # zone quality tells winners from losers; the rest is flat
        trades.append({"run_id": "sig-calibration", "trade_id": f"t{n}", "signal_id": f"sig-s{n}", "strategy": "smc",
                       "symbol": SYMBOL, "interval": "1h", "direction": "long", "score": 70.0 if wins else 30.0,
                       "score_zone_quality": 90.0 if wins else 10.0, "score_bos": 50.0, "score_confluence": 50.0,
                       "score_sentiment": 50.0, "score_zone_behaviour": 50.0, "entry_time_ms": T0 + n * H,
                       "entry_price": Decimal("100"), "quantity": Decimal("1"),
                       "r_multiple": 2.0 if wins else -1.0})
    components = ["r_multiple", *[f"score_{c}" for c in COMPONENTS]]
    before = len(statistical_scorer.measured_trades(spark, config).dropna(subset=components))  # other tests' own
    append(spark, "gold.backtest_trades", trades)
    # the same backtest run again: the same setups, counted once
    append(spark, "gold.backtest_trades", [{**t, "run_id": "sig-calibration-2"} for t in trades])
    try:
        measured = statistical_scorer.measured_trades(spark, config).dropna(subset=components)
        assert len(measured) == before + 40
        message = statistical_scorer.run_calibration(spark, config)
        assert f"from {before + 40} trades" in message
        calibration = statistical_scorer.latest_calibration(spark, config)
        expected, expected_rows = calibrate(measured, "any")
        assert calibration.version == expected.version  # stored and read back as computed
        assert calibration.weights == pytest.approx(expected.weights)
        stored = spark.table("gold.scorer_calibration").where(
            F.col("calibration_version") == calibration.version).toPandas().set_index(["component", "bucket"])
        assert len(stored) == 25 and stored.loc[("zone_quality", "80-100"), "trades"] >= 20
        assert "already stored" in statistical_scorer.run_calibration(spark, config)
        assert "60-80" in statistical_scorer.report(spark, config)
    finally:  # the lake is shared: later scorings go back to the default calibration
        spark.sql("DELETE FROM gold.backtest_trades WHERE run_id LIKE 'sig-calibration%'")
        spark.sql("DELETE FROM gold.scorer_calibration")
    assert statistical_scorer.latest_calibration(spark, config).version == "default"


def test_a_signal_moved_meanwhile_keeps_its_status_and_only_the_moves_made_are_audited(spark, config):
    """The scorer read two signals as pending; before it wrote, another job moved one of them
    (confirmed -> executed here). Its MERGE moves only the other, and audits only that move."""
    import pandas as pd

    ids = ["sig-race-moved", "sig-race-free"]
    append(spark, "gold.signals_all", [
        {"signal_id": ids[0], "strategy": "smc", "exchange": "binance", "symbol": "RACEUSDT", "interval": "1h",
         "direction": "long", "status": "executed", "trigger_bar_time_ms": T0, "known_at_ms": T0 + H - 1},
        {"signal_id": ids[1], "strategy": "smc", "exchange": "binance", "symbol": "RACEUSDT", "interval": "1h",
         "direction": "long", "status": "pending", "trigger_bar_time_ms": T0, "known_at_ms": T0 + H - 1}])
    scored = pd.DataFrame([{
        "signal_id": signal_id, "previous_status": "pending", "status": "rejected", "status_reason": "score too low",
        "sl_price": 99.0, "tp1_price": 102.0, "tp2_price": 104.0, "rr_tp1": 2.0, "rr_tp2": 4.0, "score": 20.0,
        **{f"score_{c}": 20.0 for c in COMPONENTS}, "sentiment_score": 0.0, "scored_as_of_ms": T0 + 2 * H - 1,
        "calibration_version": "default"} for signal_id in ids])

    statistical_scorer._write(spark, config, scored, scored)

    stored = {r.signal_id: r.status for r in spark.table("gold.signals_all").where(F.col("signal_id").isin(ids))
              .collect()}
    assert stored == {ids[0]: "executed", ids[1]: "rejected"}
    audited = [(r.entity_id, r.from_status, r.to_status) for r in spark.table("trading.audit_log")
               .where(F.col("entity_id").isin(ids)).collect()]
    assert audited == [(ids[1], "pending", "rejected")]


def test_the_stream_trades_a_new_signal_before_its_audit_line_is_written(spark, config):
    """The scorer and execution engine (after_insert) run as soon as the signal is in the table:
    its creation line in the audit log comes after them, with the signal's creation time."""
    from streaming.signals import SIGNAL_SCHEMA, insert_new_signals

    symbol = "SIGAFTERUSDT"
    names = [field.split(" ")[0] for field in SIGNAL_SCHEMA.split(", ")]
    row = {"exchange": "binance", "symbol": symbol, "interval": "1h", "signal_id": f"{symbol}-1", "strategy": "smc",
           "direction": "long", "trigger_bar_time_ms": T0, "known_at_ms": T0 + H - 1, "entry_price": 101.0}
    frame = spark.createDataFrame([tuple(row.get(name) for name in names)], SIGNAL_SCHEMA)
    seen_by_trading = []

    def after_insert():
        stored = spark.table("gold.signals_all").where(F.col("signal_id") == f"{symbol}-1").collect()
        lines = spark.table("trading.audit_log").where(F.col("entity_id") == f"{symbol}-1").collect()
        seen_by_trading.append((len(stored), len(lines)))

    assert insert_new_signals(spark, config, frame, after_insert=after_insert) == 1
    assert seen_by_trading == [(1, 0)]  # the signal there, its audit line not yet
    (signal,) = spark.table("gold.signals_all").where(F.col("signal_id") == f"{symbol}-1").collect()
    (line,) = spark.table("trading.audit_log").where(F.col("entity_id") == f"{symbol}-1").collect()
    assert (line.to_status, line.reason, line.event_time) == ("pending", "found by the scanner", signal.created_at)
    assert line.event_date == signal.created_at.date()
