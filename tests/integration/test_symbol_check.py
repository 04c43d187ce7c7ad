"""`cryptobot symbols --check`: the symbol map held against the markets the real ccxt client
loads from the fake exchange (each exchange's own market-list format)."""
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port, isolated_env
from tests.fake_exchange import FakeExchange

CRYPTOBOT = str(Path(sys.executable).parent / "cryptobot")


def symbols_command(env, *args):
    return subprocess.run([CRYPTOBOT, "symbols", *args], env=env, capture_output=True, text=True, timeout=120)


def test_every_listed_symbol_passes_and_an_unlisted_one_fails(tmp_path):
    with FakeExchange({}, symbols=("BTCUSDT", "ETHUSDT")) as fake:
        env = {**isolated_env(tmp_path), "CRYPTOBOT_PRODUCER__API_BASE_URL": fake.base_url,
               "CRYPTOBOT_EXCHANGES__SYMBOLS": "BTCUSDT,ETHUSDT"}
        listed = symbols_command(env, "--check")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        lines = listed.stdout.splitlines()
        assert len(lines) == 1 + 3 * 2 and all(line.rstrip().endswith("ok") for line in lines[1:]), listed.stdout
        assert any(line.split()[:4] == ["okx", "ETHUSDT", "ETH/USDT:USDT", "ETH-USDT-SWAP"] for line in lines)

        unlisted = symbols_command({**env, "CRYPTOBOT_EXCHANGES__SYMBOLS": "BTCUSDT,DOGEUSDT"}, "--check")
        assert unlisted.returncode == 1
        failed = [line for line in unlisted.stdout.splitlines() if "FAILED" in line]
        assert len(failed) == 3 and all("lists no market DOGE/USDT:USDT" in line for line in failed), unlisted.stdout


def test_an_unreachable_exchange_is_reported_not_checked(tmp_path):
    env = {**isolated_env(tmp_path), "CRYPTOBOT_PRODUCER__API_BASE_URL": f"http://127.0.0.1:{free_port()}",
           "CRYPTOBOT_PRODUCER__RETRY_MAX_ATTEMPTS": "1", "CRYPTOBOT_EXCHANGES__ENABLED": "bybit"}
    result = symbols_command(env, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not checked: markets could not be loaded" in result.stdout
    # Without --check it only shows the map.
    shown = symbols_command(env)
    assert shown.returncode == 0
    assert shown.stdout.splitlines()[1].split() == ["bybit", "BTCUSDT", "BTC/USDT:USDT", "BTCUSDT", "not", "checked"]
