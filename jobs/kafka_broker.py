"""The local Kafka broker: a real single-node Apache Kafka (KRaft) run from Maven's jars.

`cryptobot kafka up|down|status` and the test fixtures use it. On a cluster Kafka is run by
its operators and this module is not used; only `ensure_topics` is (topics are created
explicitly, never auto-created).
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.config import PROJECT_ROOT, AppConfig

log = logging.getLogger(__name__)

KAFKA_JARS_DIR = PROJECT_ROOT / "jars" / "kafka"
SERVER_PROPERTIES_TEMPLATE = PROJECT_ROOT / "conf" / "kafka" / "server.properties"


class BrokerError(RuntimeError):
    """The broker could not be started, reached or stopped."""


@dataclass
class BrokerStatus:
    running: bool
    pid: int | None
    reachable: bool
    bootstrap_servers: str
    topics: dict[str, int] = field(default_factory=dict)  # topic -> partition count

    def describe(self) -> str:
        state = "running" if self.running else "stopped"
        lines = [f"kafka broker: {state} pid={self.pid or '-'} bootstrap={self.bootstrap_servers} "
                 f"reachable={'yes' if self.reachable else 'no'}"]
        for topic, partitions in sorted(self.topics.items()):
            lines.append(f"  topic {topic} partitions={partitions}")
        return "\n".join(lines)


class LocalKafkaBroker:
    """Start, stop and inspect the broker whose files live under <data_dir>/kafka."""

    def __init__(self, config: AppConfig, jars_dir: Path = KAFKA_JARS_DIR):
        self.config = config
        self.jars_dir = jars_dir
        self.home = config.paths.data_dir / "kafka"
        self.logs_dir = self.home / "logs"
        self.properties_path = self.home / "server.properties"
        self.pid_path = self.home / "broker.pid"
        self.output_path = self.home / "broker.out"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout_s: float = 120.0) -> int:
        """Start the broker if it is not running, wait until it answers, create the topics."""
        pid = self.running_pid()
        if pid is None:
            self._check_jars()
            self.home.mkdir(parents=True, exist_ok=True)
            self._write_properties()
            self._format_storage_once()
            pid = self._launch()
            log.info("event=kafka_started pid=%s bootstrap=%s", pid, self.config.kafka.bootstrap_servers)
        self._wait_until_reachable(pid, timeout_s)
        ensure_topics(self.config)
        return pid

    def stop(self, timeout_s: float = 60.0) -> bool:
        """SIGTERM (a controlled shutdown), then SIGKILL if it hangs. True if it was running."""
        pid = self.running_pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _is_alive(pid):
            log.warning("event=kafka_kill pid=%s reason=no exit %ss after SIGTERM", pid, timeout_s)
            os.killpg(pid, signal.SIGKILL)
            while _is_alive(pid):
                time.sleep(0.1)
        self.pid_path.unlink(missing_ok=True)
        log.info("event=kafka_stopped pid=%s", pid)
        return True

    def status(self) -> BrokerStatus:
        pid = self.running_pid()
        topics: dict[str, int] = {}
        reachable = False
        if pid is not None and _port_open(self.config.kafka.broker_host, self.config.kafka.broker_port):
            try:
                topics = list_topics(self.config)
                reachable = True
            except Exception as err:  # noqa: BLE001 - status reports, it does not fail
                log.debug("event=kafka_status_unreachable error=%s", err)
        return BrokerStatus(pid is not None, pid, reachable, self.config.kafka.bootstrap_servers, topics)

    def running_pid(self) -> int | None:
        """The pid in the pid file, if that process is alive and really is this broker."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _is_alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return pid  # no /proc (macOS): trust the pid file
        # A recycled pid belongs to some other program: not ours to signal.
        return pid if "kafka.Kafka" in cmdline and str(self.properties_path) in cmdline else None

    # -- steps -------------------------------------------------------------------------

    def _check_jars(self) -> None:
        if not any(self.jars_dir.glob("kafka_2.13-*.jar")):
            raise BrokerError(f"no Kafka jars in {self.jars_dir}: run `make setup` first")

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not java:
            raise BrokerError("java not found: install Java 17 or set JAVA_HOME")
        return java

    def _classpath(self) -> str:
        return str(self.jars_dir / "*")

    def _write_properties(self) -> None:
        kafka = self.config.kafka
        host, port, controller_port = kafka.broker_host, kafka.broker_port, kafka.controller_port
        overrides = {
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.quorum.voters": f"1@{host}:{controller_port}",
            "log.dirs": str(self.logs_dir),
        }
        self.properties_path.write_text(render_properties(SERVER_PROPERTIES_TEMPLATE.read_text(), overrides))

    def _format_storage_once(self) -> None:
        if (self.logs_dir / "meta.properties").exists():
            return
        base = [self._java(), "-Xmx128m", "-cp", self._classpath(), "kafka.tools.StorageTool"]
        cluster_id = subprocess.run(
            base + ["random-uuid"], check=True, capture_output=True, text=True
        ).stdout.strip().splitlines()[-1]
        result = subprocess.run(
            base + ["format", "-t", cluster_id, "-c", str(self.properties_path), "--ignore-formatted"],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed: {result.stderr or result.stdout}")
        log.info("event=kafka_storage_formatted cluster_id=%s dir=%s", cluster_id, self.logs_dir)

    def _launch(self) -> int:
        heap = self.config.kafka.broker_heap_mb
        command = [
            self._java(), f"-Xmx{heap}m", f"-Xms{min(heap, 128)}m", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-cp", self._classpath(), "kafka.Kafka", str(self.properties_path),
        ]
        with open(self.output_path, "ab") as output:
            # Its own session: a Ctrl-C in the user's terminal must not kill the broker
            # behind the user's back, and `down` can signal the whole group.
            process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.home,
            )
        self.pid_path.write_text(str(process.pid))
        return process.pid

    def _wait_until_reachable(self, pid: int, timeout_s: float) -> None:
        kafka = self.config.kafka
        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not _is_alive(pid):
                raise BrokerError(f"Kafka broker exited at start; last lines of {self.output_path}:\n"
                                  + _tail(self.output_path))
            if _port_open(kafka.broker_host, kafka.broker_port):
                try:
                    list_topics(self.config)
                    return
                except Exception as err:  # noqa: BLE001 - not ready yet
                    last_error = err
            time.sleep(0.5)
        raise BrokerError(f"Kafka broker not reachable at {kafka.bootstrap_servers} after {timeout_s}s "
                          f"({last_error}); see {self.output_path}")


# -- topics (also used against a cluster's broker) ---------------------------------------

def _admin(config: AppConfig):
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(
        bootstrap_servers=config.kafka.bootstrap_servers,
        client_id="cryptobot-admin",
        request_timeout_ms=10_000,
    )


def list_topics(config: AppConfig) -> dict[str, int]:
    admin = _admin(config)
    try:
        described = admin.describe_topics()
        return {t["name"]: len(t["partitions"]) for t in described if not t["is_internal"]}
    finally:
        admin.close()


def ensure_topics(config: AppConfig, topics: list[str] | None = None) -> list[str]:
    """Create the topics that do not exist yet; return the ones created."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    wanted = topics if topics is not None else config.topics()
    admin = _admin(config)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            new_topics = [
                NewTopic(
                    name=topic,
                    num_partitions=config.kafka.topic_partitions,
                    replication_factor=config.kafka.topic_replication_factor,
                    topic_configs={"retention.ms": str(config.kafka.topic_retention_ms)},
                )
                for topic in missing
            ]
            try:
                admin.create_topics(new_topics)
            except TopicAlreadyExistsError:
                pass  # another process created it between our list and create
            log.info("event=kafka_topics_created topics=%s", ",".join(missing))
        return missing
    finally:
        admin.close()


# -- small helpers -----------------------------------------------------------------------

def render_properties(template: str, overrides: dict[str, str]) -> str:
    """Replace the value of each overridden key in a .properties text; append absent keys."""
    lines, seen = [], set()
    for line in template.splitlines():
        key = line.split("=", 1)[0].strip()
        if not line.lstrip().startswith("#") and "=" in line and key in overrides:
            lines.append(f"{key}={overrides[key]}")
            seen.add(key)
        else:
            lines.append(line)
    lines += [f"{key}={value}" for key, value in overrides.items() if key not in seen]
    return "\n".join(lines) + "\n"


def _is_alive(pid: int) -> bool:
    try:
        # Reap it if it is our own child that has exited, or it would linger as a zombie.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not Path("/proc").is_dir()


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no output)"
