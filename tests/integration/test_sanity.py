"""`cryptobot sanity` passes on the replayed sample, and fails with a clear report once a kline
is missing: from unified (a gap), or from silver (a message lost between bronze and silver)."""
import subprocess
import sys
from pathlib import Path

from common.config import load_config
from common.sanity_checks import FAIL, PASS, check_unified, reconcile_bronze_to_silver
from streaming.app import run_stream
from streaming.replay import replay_file
from streaming.sample_data import SAMPLE_SOURCE
from tests.sample_series import sample_days

CRYPTOBOT = str(Path(sys.executable).parent / "cryptobot")
SYMBOL = "ADAUSDT"
GAP_FROM_MS = 1_786_924_800_000 + 86_400_000  # 2026-08-18 00:00 UTC
FAR_FUTURE_MS = 4_000_000_000_000  # counts every bronze row, however recent, as due in silver


def failures(results):
    return [r for r in results if r.status == FAIL]


def test_sanity_passes_on_the_sample_and_fails_clearly_on_a_crafted_gap(spark, pipeline_env, tmp_path):
    env = {**pipeline_env, "CRYPTOBOT_EXCHANGES__ENABLED": "binance", "CRYPTOBOT_EXCHANGES__SYMBOLS": SYMBOL}
    config = load_config(env=env)
    replay_file(config, sample_days(tmp_path / "sample.csv", 3), exchange="binance", symbol=SYMBOL,
                derive=["15m", "1h", "4h"], source=SAMPLE_SOURCE)
    run_stream(spark, config, available_now=True, stages=3)

    clean = (reconcile_bronze_to_silver(spark, config, now_ms=FAR_FUTURE_MS, symbols=[SYMBOL])
             + check_unified(spark, config, symbols=[SYMBOL]))
    assert failures(clean) == []
    assert {r.check_name for r in clean} == {"bronze_to_silver_reconciliation", "no_duplicate_keys",
                                             "ohlc_invariants", "no_gaps", "freshness"}
    assert all(r.status == PASS for r in clean)

    spark.sql(f"DELETE FROM silver.unified_klines WHERE symbol = '{SYMBOL}' AND interval = '1m' "
              f"AND open_time_ms BETWEEN {GAP_FROM_MS} AND {GAP_FROM_MS + 120_000}")
    gap = failures(check_unified(spark, config, symbols=[SYMBOL]))
    assert [(r.check_name, r.interval, r.observed) for r in gap] == [("no_gaps", "1m", 3)]
    assert gap[0].detail == "1 gaps: 2026-08-18 00:00 .. 2026-08-18 00:02 (3 bars)"

    spark.sql(f"DELETE FROM silver.binance_klines WHERE symbol = '{SYMBOL}' AND interval = '4h' "
              f"AND open_time_ms = {GAP_FROM_MS}")
    lost = failures(reconcile_bronze_to_silver(spark, config, now_ms=FAR_FUTURE_MS, symbols=[SYMBOL]))
    assert [(r.check_name, r.interval, r.observed) for r in lost] == [("bronze_to_silver_reconciliation", "4h", 1)]

    report = subprocess.run([CRYPTOBOT, "sanity", "--symbol", SYMBOL], env=env, capture_output=True, text=True,
                            timeout=300)
    assert report.returncode == 1, report.stderr[-2000:]
    assert "FAIL  no_gaps" in report.stdout and "2026-08-18 00:00 .. 2026-08-18 00:02 (3 bars)" in report.stdout
    recorded = spark.table("gold.sanity_results").where(f"symbol = '{SYMBOL}' AND status = 'fail'")
    assert recorded.where("check_name = 'no_gaps'").count() >= 1
