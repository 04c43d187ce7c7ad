"""Fixtures shared by every test: one app config pointing at a temporary lake and data folder,
one SparkSession for the whole run, one real Kafka broker started from the project's jars.
A guard makes any test that opens a socket to a non-loopback address fail."""
from __future__ import annotations

import ipaddress
import os
import socket

import pytest

from common.config import load_config


# -- no test may touch the internet --------------------------------------------------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _assert_loopback(sock: socket.socket, address) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0]
    for info in socket.getaddrinfo(host, None):
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if not ip.is_loopback:
            raise RuntimeError(f"test tried to open a socket to non-loopback address {host} ({ip})")


def _guarded_connect(self, address):
    _assert_loopback(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _assert_loopback(self, address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex


# -- configuration ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_env(base_dir, broker_port: int | None = None, controller_port: int | None = None) -> dict[str, str]:
    """Environment that points the app at `base_dir` and its own broker ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOBOT_")}
    env.update({
        "CRYPTOBOT_PATHS__DATA_DIR": str(base_dir / "data"),
        "CRYPTOBOT_LAKE__ROOT": str(base_dir / "lake"),
        "CRYPTOBOT_LAKE__CHECKPOINT_ROOT": str(base_dir / "checkpoints"),
        "CRYPTOBOT_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port or free_port()}",
        "CRYPTOBOT_KAFKA__CONTROLLER_PORT": str(controller_port or free_port()),
        "CRYPTOBOT_SPARK__SHUFFLE_PARTITIONS": "2",
    })
    return env


@pytest.fixture(scope="session")
def app_env(tmp_path_factory) -> dict[str, str]:
    return isolated_env(tmp_path_factory.mktemp("cryptobot"))


@pytest.fixture(scope="session")
def app_config(app_env):
    return load_config(env=app_env)


# -- Spark -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def spark(app_config):
    from common.spark_session import build_spark_session

    session = build_spark_session(
        app_config, "cryptobot-tests", register=False,
        extra_conf={"spark.ui.enabled": "false", "spark.driver.memory": "2g"},
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def initialized_lake(spark, app_config):
    """The whole catalog created once for the run (init is what the spark tests exercise)."""
    from common import init_tables

    return init_tables.run(spark, app_config)


# -- Kafka -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def kafka_broker(app_config):
    from jobs.kafka_broker import LocalKafkaBroker

    broker = LocalKafkaBroker(app_config)
    broker.start()
    yield broker
    broker.stop()


_topic_prefixes = iter(range(1, 10_000))


@pytest.fixture
def pipeline_env(app_env, kafka_broker, initialized_lake, tmp_path) -> dict[str, str]:
    """The session's broker and lake, with topics and checkpoints of this test's own: each test
    produces to <prefix>klines.<exchange> and finds its bronze rows by that topic."""
    from jobs.kafka_broker import ensure_topics

    env = dict(app_env)
    env["CRYPTOBOT_KAFKA__TOPIC_PREFIX"] = f"t{next(_topic_prefixes)}-{tmp_path.name[:20]}."
    env["CRYPTOBOT_LAKE__CHECKPOINT_ROOT"] = str(tmp_path / "checkpoints")
    ensure_topics(load_config(env=env))
    return env
