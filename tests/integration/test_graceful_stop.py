"""Graceful stop: a stop request (what SIGTERM and Ctrl-C set) while the stream is busy lets
every query finish the micro-batch it is in: afterwards each query's checkpoint has committed
every batch it planned, so nothing is redone on the next start; and `--from` / `--until` run
a range of the stages, as a scheduler does (conf/crontab.example)."""
import threading
import time
from pathlib import Path

from common.config import load_config
from streaming.app import run_stream
from streaming.replay import replay_file
from streaming.sample_data import SAMPLE_SOURCE
from tests.sample_series import sample_days

SYMBOL = "STOPUSDT"  # this test's own: the lake is shared


def batches(checkpoint: Path, kind: str) -> set[int]:
    folder = checkpoint / kind
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit()} if folder.exists() else set()


def test_a_stop_request_lets_every_query_finish_its_batch(spark, pipeline_env, tmp_path):
    config = load_config(env={**pipeline_env, "CRYPTOBOT_EXCHANGES__ENABLED": "binance",
                              "CRYPTOBOT_EXCHANGES__SYMBOLS": SYMBOL, "CRYPTOBOT_EXCHANGES__INTERVALS": "15m",
                              "CRYPTOBOT_STREAMING__TRIGGER_INTERVAL_SECONDS": "1",
                              "CRYPTOBOT_STREAMING__MAX_OFFSETS_PER_TRIGGER": "1000"})
    replay_file(config, sample_days(tmp_path / "sample.csv", 5), exchange="binance", symbol=SYMBOL, derive=["15m"], source=SAMPLE_SOURCE)
    stop = threading.Event()
    runner = threading.Thread(target=run_stream, args=(spark, config), kwargs={"stop": stop, "stages": 2})
    runner.start()
    silver_checkpoint = Path(config.lake.checkpoint_path("silver_binance_klines"))
    deadline = time.monotonic() + 240
    while not batches(silver_checkpoint, "commits") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert batches(silver_checkpoint, "commits"), "silver committed no batch in time"
    stop.set()  # five days' ~7.7k messages at 1,000 a batch: bronze and silver are still busy
    runner.join(timeout=300)
    assert not runner.is_alive()

    for name in ("bronze_binance_klines", "silver_binance_klines"):
        checkpoint = Path(config.lake.checkpoint_path(name))
        planned, committed = batches(checkpoint, "offsets"), batches(checkpoint, "commits")
        assert planned and planned == committed, f"{name}: planned {sorted(planned)}, committed {sorted(committed)}"

    # The rest, from silver to unified only: --from silver --until unified.
    run_stream(spark, config, available_now=True, first_stage=1, stages=3)
    unified = spark.table("silver.unified_klines").where(f"symbol = '{SYMBOL}'").count()
    silver = spark.table("silver.binance_klines").where(f"symbol = '{SYMBOL}'").count()
    bronze = spark.table("bronze.binance_klines").where(f"topic = '{config.klines_topic('binance')}'").count()
    assert 0 < unified == silver <= bronze
