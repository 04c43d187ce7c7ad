"""Replay throughput: Kafka -> bronze -> silver -> unified (`stream --available-now --until
unified`), against a plain Kafka -> Delta append of the same messages as the baseline. Prints
klines per second for both, their ratio, and the driver's peak memory (JVM and Python).

It runs on its own: a throw-away data folder, a Kafka broker from the project's jars on free
ports, a fresh lake. The kline set is realistic in shape: 1m klines of a random walk for
`--symbols` symbols on each of the three exchanges, the messages the producers send.

    python bench/replay_throughput.py                 # 2,000,000 klines, 50 symbols
    python bench/replay_throughput.py --klines 200000 # a quicker look
"""
from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.config import load_config  # noqa: E402
from jobs.kafka_broker import LocalKafkaBroker  # noqa: E402
from common.spark_session import build_spark_session  # noqa: E402
from common.symbols import ccxt_symbol, conventional_exchange_symbol  # noqa: E402
from common import init_tables  # noqa: E402
from streaming.app import run_stream  # noqa: E402
from streaming.bronze import read_topic, to_bronze_rows  # noqa: E402

EXCHANGES = ("binance", "bybit", "okx")
START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def symbol_names(count: int) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [f"{letters[i // 26 % 26]}{letters[i % 26]}X{i}USDT" for i in range(count)]


def produce_klines(config, symbols: list[str], per_stream: int) -> int:
    """Send per_stream 1m klines for every (exchange, symbol), one stream after the other."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=config.kafka.bootstrap_servers, acks="all", enable_idempotence=True,
                             linger_ms=50, batch_size=512 * 1024, max_request_size=8 * 1024 * 1024)
    rng = np.random.default_rng(7)
    sent = 0
    for exchange in EXCHANGES:
        topic = config.klines_topic(exchange)
        for n, symbol in enumerate(symbols):
            closes = 100.0 * (n + 1) * np.exp(np.cumsum(rng.normal(0, 0.001, per_stream)))
            opens = np.concatenate(([closes[0]], closes[:-1]))
            spread = np.abs(rng.normal(0, 0.0005, per_stream)) * closes
            highs, lows = np.maximum(opens, closes) + spread, np.minimum(opens, closes) - spread
            volumes = rng.gamma(2.0, 5.0, per_stream)
            key = f"{symbol}|1m".encode()
            prefix = (f'{{"schema_version":1,"exchange":"{exchange}","symbol":"{symbol}",'
                      f'"exchange_symbol":"{conventional_exchange_symbol(exchange, symbol)}",'
                      f'"ccxt_symbol":"{ccxt_symbol(symbol)}","interval":"1m","open_time":')
            for i in range(per_stream):
                t = START_MS + i * 60_000
                value = (f'{prefix}{t},"close_time":{t + 59_999},"open":{opens[i]:.4f},"high":{highs[i]:.4f},'
                         f'"low":{lows[i]:.4f},"close":{closes[i]:.4f},"volume":{volumes[i]:.3f},'
                         f'"quote_volume":null,"trade_count":null,"source":"bench","produced_at":{t + 60_500}}}')
                producer.send(topic, key=key, value=value.encode())
            sent += per_stream
    producer.flush()
    producer.close()
    return sent


class PeakMemory:
    """Samples the driver JVM's resident memory (its VmHWM, the kernel's high-water mark)."""

    def __init__(self, pid: int):
        self.pid = pid

    def jvm_peak_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def baseline_append(spark, config, target: str, checkpoint: str) -> int:
    """The same topics straight into one Delta table: the cost of Kafka + Delta alone."""
    streams = [read_topic(spark, config, config.klines_topic(ex)) for ex in EXCHANGES]
    source = streams[0]
    for other in streams[1:]:
        source = source.unionByName(other)
    query = (to_bronze_rows(source).writeStream.format("delta").option("checkpointLocation", checkpoint)
             .trigger(availableNow=True).start(target))
    query.awaitTermination()
    return spark.read.format("delta").load(target).count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--klines", type=int, default=2_000_000)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--max-offsets-per-trigger", type=int, default=1_000_000)
    parser.add_argument("--analytics", action="store_true", help="also time analytics and signals after unified")
    args = parser.parse_args()
    symbols = symbol_names(args.symbols)
    per_stream = args.klines // (len(EXCHANGES) * len(symbols))

    with tempfile.TemporaryDirectory(prefix="cryptobot-bench-") as base:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("CRYPTOBOT_")},
               "CRYPTOBOT_PATHS__DATA_DIR": f"{base}/data", "CRYPTOBOT_LAKE__ROOT": f"{base}/lake",
               "CRYPTOBOT_LAKE__CHECKPOINT_ROOT": f"{base}/checkpoints",
               "CRYPTOBOT_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
               "CRYPTOBOT_KAFKA__CONTROLLER_PORT": str(free_port()),
               "CRYPTOBOT_EXCHANGES__SYMBOLS": ",".join(symbols),
               "CRYPTOBOT_STREAMING__MAX_OFFSETS_PER_TRIGGER": str(args.max_offsets_per_trigger)}
        config = load_config(env=env)
        broker = LocalKafkaBroker(config)
        broker.start()
        try:
            started = time.perf_counter()
            total = produce_klines(config, symbols, per_stream)
            produce_s = time.perf_counter() - started
            print(f"klines produced to Kafka        {total:>12,d}  in {produce_s:7.1f} s "
                  f"({total / produce_s:,.0f}/s, kafka-python)", flush=True)

            spark = build_spark_session(config, "bench-replay", register=False)
            init_tables.run(spark, config)
            memory = PeakMemory(spark.sparkContext._jvm.ProcessHandle.current().pid())

            # What the issue times: stream --available-now from Kafka to silver.unified_klines.
            started = time.perf_counter()
            report = run_stream(spark, config, available_now=True, stages=3)
            pipeline_s = time.perf_counter() - started
            unified = spark.table("silver.unified_klines").count()
            assert unified == total, f"unified has {unified} klines, {total} were produced"
            print(f"pipeline Kafka->unified         {total:>12,d}  in {pipeline_s:7.1f} s "
                  f"({total / pipeline_s:,.0f} klines/s)", flush=True)
            for stage, seconds in report.stage_seconds.items():
                print(f"  stage {stage:<24} {seconds:8.1f} s")

            if args.analytics:  # the later stages on the same klines, for the record (not in the ratio)
                started = time.perf_counter()
                later = run_stream(spark, config, available_now=True, first_stage=3)
                print(f"analytics + signals on them      {time.perf_counter() - started:7.1f} s", flush=True)
                for stage, seconds in later.stage_seconds.items():
                    print(f"  stage {stage:<24} {seconds:8.1f} s")

            started = time.perf_counter()
            appended = baseline_append(spark, config, f"{base}/baseline", f"{base}/checkpoints/baseline")
            baseline_s = time.perf_counter() - started
            assert appended == total
            print(f"baseline Kafka->Delta append    {total:>12,d}  in {baseline_s:7.1f} s "
                  f"({total / baseline_s:,.0f} klines/s)")
            print(f"pipeline / baseline rate        {baseline_s / pipeline_s:12.2f}")
            print(f"driver peak memory              JVM {memory.jvm_peak_mib():,.0f} MiB, "
                  f"Python {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
            spark.stop()
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
