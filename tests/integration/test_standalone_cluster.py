"""Scale out: a real Spark standalone cluster on this machine (a master and a worker started with
pyspark's `spark-class`), the code shipped as the zip `make dist` builds (`--py-files`) and the
jars as `--jars`, exactly as on a cluster. The stream (`--available-now`) and a backtest run there
with `spark-submit --master spark://127.0.0.1:<port>` over a lake of their own give the same
klines, analytics, signals and trades as the same work in local mode. About 7 minutes on 2 cores,
most of it JVM start-ups: `make test-cluster` runs it, `make test` leaves it out."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from common.config import load_config
from common.backtest import backtesting
from streaming.app import run_stream
from common.kline_files import read_kline_file
from streaming.replay import replay_file
from streaming.sample_data import SAMPLE_SOURCE, sample_path
from tests.conftest import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.cluster
SYMBOL = "CLUSTERUSDT"  # this test's own: the session's lake is shared
DAYS = 3


def wait_for_port(port: int, what: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"{what} not listening on {port} after {timeout_s} s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A standalone master and one worker (2 cores, 3 GiB) on loopback; yields the master URL."""
    base = tmp_path_factory.mktemp("standalone")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_CONF_DIR": str(PROJECT_ROOT / "conf"),
           "PYSPARK_PYTHON": sys.executable, "SPARK_LOG_DIR": str(base / "logs"), "SPARK_WORKER_DIR": str(base)}
    port, master_ui, worker_ui = free_port(), free_port(), free_port()
    logs = open(base / "daemons.log", "w")
    master = subprocess.Popen([str(BIN / "spark-class"), "org.apache.spark.deploy.master.Master", "--host",
                               "127.0.0.1", "--port", str(port), "--webui-port", str(master_ui)],
                              env=env, stdout=logs, stderr=subprocess.STDOUT)
    worker = None
    try:
        wait_for_port(port, "the Spark master", master)
        url = f"spark://127.0.0.1:{port}"
        worker = subprocess.Popen([str(BIN / "spark-class"), "org.apache.spark.deploy.worker.Worker", url,
                                   "--host", "127.0.0.1", "--cores", "2", "--memory", "3g", "--webui-port",
                                   str(worker_ui), "--work-dir", str(base / "work")],
                                  env=env, stdout=logs, stderr=subprocess.STDOUT)
        wait_for_port(worker_ui, "the Spark worker", worker)
        yield url
    finally:
        for process in (worker, master):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
        logs.close()


def spark_submit(master: str, dist: Path, env: dict[str, str], *args: str) -> str:
    jars = (dist / "spark-jars.txt").read_text().strip()
    command = [str(BIN / "spark-submit"), "--master", master, "--properties-file",
               str(PROJECT_ROOT / "conf" / "spark-defaults.conf"), "--jars", jars, "--py-files",
               str(dist / "cryptobot.zip"), "--conf", f"spark.pyspark.python={sys.executable}",
               "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.executor.memory=2g",
               str(PROJECT_ROOT / "jobs" / "cli.py"), *args]
    # The driver imports the zip's code, not the checkout's: run it from elsewhere.
    # spark-submit finds Spark through the python on PATH: the venv's first, as `make submit` does.
    env = {**env, "PYTHONPATH": "", "PATH": f"{BIN}{os.pathsep}{env.get('PATH', os.environ.get('PATH', ''))}"}
    done = subprocess.run(command, env=env, cwd=dist, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"spark-submit {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return done.stdout


def test_the_stream_and_a_backtest_on_a_standalone_cluster_equal_local_mode(spark, pipeline_env, cluster,
                                                                              tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, str(PROJECT_ROOT / "jvm" / "build_dist.py"), str(dist)], check=True)
    env = {**pipeline_env, "CRYPTOBOT_EXCHANGES__ENABLED": "binance", "CRYPTOBOT_EXCHANGES__SYMBOLS": SYMBOL,
           "CRYPTOBOT_EXCHANGES__INTERVALS": "15m,1h", "CRYPTOBOT_STREAMING__TRADING_JOBS": "off"}
    local = load_config(env=env)
    minutes = read_kline_file(sample_path())
    part = tmp_path / "sample_part.csv"
    minutes.head(DAYS * 1440).to_csv(part, index=False)
    replay_file(local, part, exchange="binance", symbol=SYMBOL, derive=["15m", "1h"], source=SAMPLE_SOURCE)

    # Local mode, in this session, on the shared lake.
    run_stream(spark, local, available_now=True)
    settings = ["symbols=" + SYMBOL, "timeframes=15m,1h", "score_threshold_execute=0",
                "score_threshold_watchlist=0"]  # every setup with a plan trades: something to compare
    local_run = backtesting.run(spark, local, backtesting.BacktestConfig.load(overrides=settings), progress=False)

    # The cluster, from the same topics, into a lake and checkpoints of its own.
    cluster_env = {**env, "CRYPTOBOT_LAKE__ROOT": str(tmp_path / "cluster-lake"),
                   "CRYPTOBOT_LAKE__CHECKPOINT_ROOT": str(tmp_path / "cluster-checkpoints"),
                   "CRYPTOBOT_CONFIG": str(PROJECT_ROOT / "conf" / "app.toml")}
    spark_submit(cluster, dist, cluster_env, "init")
    spark_submit(cluster, dist, cluster_env, "stream", "--available-now")
    out = spark_submit(cluster, dist, cluster_env, "backtest", "--no-progress",
                       *[arg for s in settings for arg in ("--set", s)])

    cluster_config = load_config(env=cluster_env)
    where = f"symbol = '{SYMBOL}'"

    def table(config, name, order):
        """The symbol's rows, without the wall-clock times of when they were written."""
        frame = spark.read.format("delta").load(config.lake.table_path(*name.split("."))).where(where)
        written_at = [f.name for f in frame.schema
                      if f.dataType.typeName() == "timestamp" and f.name != "open_time"]
        return frame.drop(*written_at).toPandas().sort_values(order).reset_index(drop=True)

    checks = {"silver.unified_klines": ["interval", "open_time_ms"],
              "gold.bos_warnings": ["event_id"], "gold.liquidity_zones": ["zone_id", "version"],
              "gold.signals_all": ["signal_id"]}
    for name, order in checks.items():
        here, there = table(local, name, order), table(cluster_config, name, order)
        assert len(here) > 0, f"{name}: nothing to compare"
        pd.testing.assert_frame_equal(here, there, check_dtype=False, obj=name)

    def trades(config, run_id):
        frame = spark.read.format("delta").load(config.lake.table_path("gold", "backtest_trades")).toPandas()
        frame = frame[frame.run_id == run_id]
        return frame.drop(columns=["run_id", "trade_id"]).sort_values(
            ["scope", "signal_id"]).reset_index(drop=True)

    cluster_run_id = re.search(r"^backtest (bt-\S+) on ", out, re.MULTILINE).group(1)
    ours, theirs = trades(local, local_run.run_id), trades(cluster_config, cluster_run_id)
    assert len(ours) > 0, "the backtest made no trade to compare"
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)
