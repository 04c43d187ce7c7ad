"""API credentials come from the environment or an owner-only secrets file, and never print; the
testnet's and the live account's keys have names of their own, and the old names without the
account are refused, never taken for either."""
import os

import pytest

from common.config import ConfigError
from common.secrets import load_exchange_credentials


def no_file(tmp_path):
    return {"CRYPTOBOT_SECRETS_FILE": str(tmp_path / "none.toml")}


def secrets_file(tmp_path, text, mode=0o600):
    path = tmp_path / "secrets.toml"
    path.write_text(text)
    os.chmod(path, mode)
    return {"CRYPTOBOT_SECRETS_FILE": str(path)}


def test_credentials_from_environment_are_masked_in_repr(tmp_path):
    env = {"CRYPTOBOT_BYBIT_TESTNET_API_KEY": "key-abcdefghijkl",
           "CRYPTOBOT_BYBIT_TESTNET_API_SECRET": "s3cr3t-value-xyz", **no_file(tmp_path)}
    creds = load_exchange_credentials("bybit", "testnet", env)
    assert creds.api_key == "key-abcdefghijkl" and creds.api_secret == "s3cr3t-value-xyz"
    assert creds.mode == "testnet"
    assert "s3cr3t" not in repr(creds) and "abcdefghijkl" not in repr(creds)


def test_no_credentials_means_none(tmp_path):
    assert load_exchange_credentials("binance", "testnet", no_file(tmp_path)) is None
    assert load_exchange_credentials("binance", "live", no_file(tmp_path)) is None


def test_half_a_key_pair_is_an_error(tmp_path):
    env = {"CRYPTOBOT_BINANCE_LIVE_API_KEY": "k" * 20, **no_file(tmp_path)}
    with pytest.raises(ConfigError, match="CRYPTOBOT_BINANCE_LIVE_API_SECRET"):
        load_exchange_credentials("binance", "live", env)


def test_testnet_keys_never_sign_for_the_live_account_nor_live_keys_for_the_testnet(tmp_path):
    testnet = {"CRYPTOBOT_BINANCE_TESTNET_API_KEY": "testnet-key-1234", "CRYPTOBOT_BINANCE_TESTNET_API_SECRET": "t"}
    live = {"CRYPTOBOT_BINANCE_LIVE_API_KEY": "live-key-5678901", "CRYPTOBOT_BINANCE_LIVE_API_SECRET": "l"}
    assert load_exchange_credentials("binance", "live", {**testnet, **no_file(tmp_path)}) is None
    assert load_exchange_credentials("binance", "testnet", {**live, **no_file(tmp_path)}) is None
    both = {**testnet, **live, **no_file(tmp_path)}
    assert load_exchange_credentials("binance", "testnet", both).api_key == "testnet-key-1234"
    assert load_exchange_credentials("binance", "live", both).api_key == "live-key-5678901"


@pytest.mark.parametrize("mode", ["testnet", "live"])
def test_the_old_unqualified_environment_names_are_refused_naming_the_new_ones(tmp_path, mode):
    env = {"CRYPTOBOT_BINANCE_API_KEY": "old-key-123456789", "CRYPTOBOT_BINANCE_API_SECRET": "old-secret",
           **no_file(tmp_path)}
    with pytest.raises(ConfigError) as err:
        load_exchange_credentials("binance", mode, env)
    message = str(err.value)
    assert "CRYPTOBOT_BINANCE_API_KEY" in message and "no longer read" in message
    for name in ("CRYPTOBOT_BINANCE_TESTNET_API_KEY", "CRYPTOBOT_BINANCE_LIVE_API_KEY", "[binance.testnet]",
                 "[binance.live]"):
        assert name in message
    assert "old-key" not in message and "old-secret" not in message
    # even beside the new names: a leftover pair is never taken for either account
    env["CRYPTOBOT_BINANCE_TESTNET_API_KEY"], env["CRYPTOBOT_BINANCE_TESTNET_API_SECRET"] = "new-key-12345", "s"
    with pytest.raises(ConfigError, match="no longer read"):
        load_exchange_credentials("binance", mode, env)


def test_the_old_unqualified_file_section_is_refused_naming_the_new_ones(tmp_path):
    env = secrets_file(tmp_path, '[binance]\napi_key = "old-key-123456789"\napi_secret = "old-secret"\n')
    with pytest.raises(ConfigError) as err:
        load_exchange_credentials("binance", "live", env)
    message = str(err.value)
    assert "api_key under [binance]" in message and "[binance.live]" in message
    assert "CRYPTOBOT_BINANCE_LIVE_API_KEY" in message and "old-key" not in message


def test_secrets_file_sections_per_account_and_environment_wins(tmp_path):
    env = secrets_file(tmp_path, '[okx.testnet]\napi_key = "file-key-123456"\napi_secret = "file-secret"\n'
                                 'api_password = "pass"\n'
                                 '[okx.live]\napi_key = "live-file-key-1"\napi_secret = "live-file-secret"\n')
    assert load_exchange_credentials("okx", "testnet", env).password == "pass"
    assert load_exchange_credentials("okx", "live", env).api_key == "live-file-key-1"
    assert load_exchange_credentials("okx", "live", env).password is None
    env["CRYPTOBOT_OKX_TESTNET_API_KEY"] = "env-key-123456789"
    creds = load_exchange_credentials("okx", "testnet", env)
    assert creds.api_key == "env-key-123456789" and creds.api_secret == "file-secret"
    assert load_exchange_credentials("okx", "live", env).api_key == "live-file-key-1"


def test_unknown_keys_in_the_secrets_file_are_named(tmp_path):
    env = secrets_file(tmp_path, '[okx.testnet]\napikey = "k"\napi_secret = "s"\n')
    with pytest.raises(ConfigError, match=r"\[okx.testnet\] has unknown keys \['apikey'\]"):
        load_exchange_credentials("okx", "testnet", env)
    env = secrets_file(tmp_path, '[okx.mainnet]\napi_key = "k"\napi_secret = "s"\n')
    with pytest.raises(ConfigError, match=r"\[okx\] has unknown keys \['mainnet'\]"):
        load_exchange_credentials("okx", "live", env)


def test_an_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="must be one of testnet, live"):
        load_exchange_credentials("okx", "paper", no_file(tmp_path))


def test_secrets_file_readable_by_others_is_refused(tmp_path):
    env = secrets_file(tmp_path, '[okx.testnet]\napi_key = "k"\napi_secret = "s"\n', mode=0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_exchange_credentials("okx", "testnet", env)


@pytest.mark.parametrize("path", ["secrets.toml", "conf/secrets.toml", "binance.secrets.toml", ".env", ".env.live",
                                  "docker/.env.testnet"])
def test_secrets_files_are_ignored_by_git(path):
    import shutil
    import subprocess

    from common.config import PROJECT_ROOT

    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "-C", str(PROJECT_ROOT), "check-ignore", "-q", "--no-index", path])
    assert ignored.returncode == 0, f"{path} is not in .gitignore"
