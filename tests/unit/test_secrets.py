"""API credentials come from the environment or an owner-only secrets file, and never print."""
import os

import pytest

from common.config import ConfigError
from common.secrets import load_exchange_credentials


def test_credentials_from_environment_are_masked_in_repr(tmp_path):
    env = {"CRYPTOBOT_BYBIT_API_KEY": "key-abcdefghijkl", "CRYPTOBOT_BYBIT_API_SECRET": "s3cr3t-value-xyz",
           "CRYPTOBOT_SECRETS_FILE": str(tmp_path / "none.toml")}
    creds = load_exchange_credentials("bybit", env)
    assert creds.api_key == "key-abcdefghijkl" and creds.api_secret == "s3cr3t-value-xyz"
    assert "s3cr3t" not in repr(creds) and "abcdefghijkl" not in repr(creds)


def test_no_credentials_means_none(tmp_path):
    assert load_exchange_credentials("binance", {"CRYPTOBOT_SECRETS_FILE": str(tmp_path / "x")}) is None


def test_half_a_key_pair_is_an_error(tmp_path):
    env = {"CRYPTOBOT_BINANCE_API_KEY": "k" * 20, "CRYPTOBOT_SECRETS_FILE": str(tmp_path / "x")}
    with pytest.raises(ConfigError, match="CRYPTOBOT_BINANCE_API_SECRET"):
        load_exchange_credentials("binance", env)


def test_secrets_file_is_read_and_environment_wins(tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_text('[okx]\napi_key = "file-key-123456"\napi_secret = "file-secret"\napi_password = "pass"\n')
    os.chmod(path, 0o600)
    env = {"CRYPTOBOT_SECRETS_FILE": str(path)}
    assert load_exchange_credentials("okx", env).password == "pass"
    env["CRYPTOBOT_OKX_API_KEY"] = "env-key-123456789"
    creds = load_exchange_credentials("okx", env)
    assert creds.api_key == "env-key-123456789" and creds.api_secret == "file-secret"


def test_secrets_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_text('[okx]\napi_key = "k"\napi_secret = "s"\n')
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_exchange_credentials("okx", {"CRYPTOBOT_SECRETS_FILE": str(path)})
