"""The user's commands, run as a user runs them: `cryptobot kafka up|status|down` leaves no
process behind, and `cryptobot sql` queries the lake `cryptobot init` made."""
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import isolated_env

CRYPTOBOT = str(Path(sys.executable).parent / "cryptobot")


def cryptobot(env, *args, timeout=300):
    return subprocess.run([CRYPTOBOT, *args], env=env, capture_output=True, text=True, timeout=timeout)


def java_processes_with(marker: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                found.append(proc.name)
    return found


def test_kafka_up_status_down_leaves_no_process(tmp_path):
    env = isolated_env(tmp_path)
    up = cryptobot(env, "kafka", "up")
    assert up.returncode == 0, up.stderr
    assert "running" in up.stdout and "topic klines.binance" in up.stdout
    assert java_processes_with(str(tmp_path)), "the broker is not running"

    up_again = cryptobot(env, "kafka", "up")  # idempotent: the same broker, no second one
    assert up_again.returncode == 0 and len(java_processes_with(str(tmp_path))) == 1

    topics = cryptobot(env, "kafka", "topics")  # `up` created them all already
    assert topics.returncode == 0 and "none (all exist)" in topics.stdout

    status = cryptobot(env, "kafka", "status")
    assert status.returncode == 0 and "reachable=yes" in status.stdout

    down = cryptobot(env, "kafka", "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert java_processes_with(str(tmp_path)) == []
    stopped = cryptobot(env, "kafka", "status")
    assert stopped.returncode == 3 and "stopped" in stopped.stdout


def test_sql_command_lists_tables_and_prints_json(app_env, initialized_lake):
    tables = cryptobot(app_env, "sql", "SHOW TABLES IN gold")
    assert tables.returncode == 0, tables.stderr
    for name in ("trading_config", "signals_all", "backtest_results", "job_runs"):
        assert f"| {name}" in tables.stdout

    config = cryptobot(app_env, "sql", "--format", "json",
                       "SELECT param_name, param_value FROM gold.trading_config WHERE param_name = 'min_rr_ratio'")
    assert config.returncode == 0, config.stderr
    assert json.loads(config.stdout) == [{"param_name": "min_rr_ratio", "param_value": "2.0"}]

    bad = cryptobot(app_env, "sql", "SELECT * FROM gold.no_such_table")
    assert bad.returncode == 1 and "sql error:" in bad.stderr and "no_such_table" in bad.stderr
