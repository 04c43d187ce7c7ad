"""Start-up figures of the local stack, on a throw-away data folder and free ports:
Kafka broker start (format + first metadata answer) and stop, SparkSession start, `init` on
an empty lake, `init` again (the idempotent path every deploy runs), and table registration
(what every job pays at start). Prints one line per figure, in seconds."""
from __future__ import annotations

import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.catalog import register_tables  # noqa: E402
from common.config import load_config  # noqa: E402
from jobs.kafka_broker import LocalKafkaBroker  # noqa: E402
from common.spark_session import build_spark_session  # noqa: E402
from common import init_tables  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(label: str, action):
    start = time.perf_counter()
    result = action()
    print(f"{label:<40} {time.perf_counter() - start:8.2f} s", flush=True)
    return result


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cryptobot-bench-") as base:
        env = {
            "CRYPTOBOT_PATHS__DATA_DIR": f"{base}/data",
            "CRYPTOBOT_LAKE__ROOT": f"{base}/lake",
            "CRYPTOBOT_LAKE__CHECKPOINT_ROOT": f"{base}/checkpoints",
            "CRYPTOBOT_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
            "CRYPTOBOT_KAFKA__CONTROLLER_PORT": str(free_port()),
        }
        config = load_config(env=env)
        broker = LocalKafkaBroker(config)
        timed("kafka broker start (first, with format)", broker.start)
        timed("kafka broker stop", broker.stop)
        timed("kafka broker start (formatted)", broker.start)
        timed("kafka broker stop", broker.stop)
        spark = timed("spark session start", lambda: build_spark_session(config, "bench", register=False))
        report = timed("init on an empty lake", lambda: init_tables.run(spark, config))
        print(f"{'  tables created':<40} {len(report.created):8d}")
        timed("init again (no-op)", lambda: init_tables.run(spark, config))
        timed("register every table (job start)", lambda: register_tables(spark, config))
        spark.stop()


if __name__ == "__main__":
    main()
