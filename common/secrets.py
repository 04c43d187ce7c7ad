"""Exchange API credentials: from the environment or a secrets file outside the repo.

Never from a table, never logged (the repr masks them). Testnet and live keys have names of
their own, so a testnet setup can never sign a live order:
  CRYPTOBOT_<EXCHANGE>_TESTNET_API_KEY, CRYPTOBOT_<EXCHANGE>_TESTNET_API_SECRET,
  CRYPTOBOT_<EXCHANGE>_TESTNET_API_PASSWORD (the password is OKX's passphrase), and the same
  with LIVE for the live account, e.g. CRYPTOBOT_BYBIT_LIVE_API_KEY.
or a TOML file at CRYPTOBOT_SECRETS_FILE (default ~/.config/cryptobot/secrets.toml):
  [bybit.testnet]
  api_key = "..."
  api_secret = "..."
  [bybit.live]
  ...
The environment wins over the file. The file must be readable by its owner only (chmod 600).
The old names without the mode (CRYPTOBOT_BYBIT_API_KEY, api_key directly under [bybit]) are
refused, never taken for either account.
"""
from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from common.config import ConfigError

DEFAULT_SECRETS_FILE = Path.home() / ".config" / "cryptobot" / "secrets.toml"
MODES = ("testnet", "live")
FIELDS = ("api_key", "api_secret", "api_password")


@dataclass(frozen=True)
class ExchangeCredentials:
    exchange: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    password: str | None = field(default=None, repr=False)
    mode: str = "testnet"

    def __repr__(self) -> str:
        return (f"ExchangeCredentials(exchange={self.exchange!r}, mode={self.mode!r}, "
                f"api_key='{mask(self.api_key)}')")


def mask(secret: str) -> str:
    return f"{secret[:3]}…{len(secret)} chars" if len(secret) > 8 else "***"


def env_names(exchange: str, mode: str) -> dict[str, str]:
    """{field: environment variable} of one exchange's keys for one mode."""
    prefix = f"CRYPTOBOT_{exchange.upper()}_{mode.upper()}_"
    return {name: prefix + name.upper() for name in FIELDS}


def load_exchange_credentials(exchange: str, mode: str,
                              env: Mapping[str, str] | None = None) -> ExchangeCredentials | None:
    """The exchange's credentials for its testnet or its live account, or None where none are
    configured (paper trading needs none)."""
    if mode not in MODES:
        raise ConfigError(f"credentials mode {mode!r}: must be one of {', '.join(MODES)}")
    env = os.environ if env is None else env
    path = Path(env.get("CRYPTOBOT_SECRETS_FILE", DEFAULT_SECRETS_FILE))
    section = _read_secrets_file(path).get(exchange, {})
    if not isinstance(section, dict):
        raise ConfigError(f"secrets file {path}: {exchange} must be the tables [{exchange}.testnet] / [{exchange}.live]")
    _refuse_unqualified_names(exchange, mode, env, section, path)
    from_file = section.get(mode, {})
    if not isinstance(from_file, dict):
        raise ConfigError(f"secrets file {path}: [{exchange}.{mode}] must be a table of {', '.join(FIELDS)}")
    unknown = sorted(set(from_file) - set(FIELDS))
    if unknown:
        raise ConfigError(f"secrets file {path}: [{exchange}.{mode}] has unknown keys {unknown}; "
                          f"allowed: {', '.join(FIELDS)}")
    names = env_names(exchange, mode)
    api_key, api_secret, password = (env.get(names[name]) or from_file.get(name) for name in FIELDS)
    if not api_key and not api_secret:
        return None
    if not (api_key and api_secret):
        raise ConfigError(f"{exchange} {mode}: both {names['api_key']} and {names['api_secret']} (or api_key and "
                          f"api_secret under [{exchange}.{mode}] in the secrets file) are needed, one is missing")
    return ExchangeCredentials(exchange, api_key, api_secret, password, mode)


def _refuse_unqualified_names(exchange: str, mode: str, env: Mapping[str, str], section: dict, path: Path) -> None:
    """Keys under the old names, which said nothing of the account they are for: refused loudly
    (a testnet key pair left there must never be taken for live, nor a live one for testnet)."""
    old_env = [f"CRYPTOBOT_{exchange.upper()}_{name.upper()}" for name in FIELDS]
    found = [name for name in old_env if env.get(name)]
    found += [f"{name} under [{exchange}] in {path}" for name in FIELDS if name in section]
    if found:
        testnet, live = env_names(exchange, "testnet"), env_names(exchange, "live")
        raise ConfigError(f"{exchange}: API keys under the old names ({', '.join(found)}) are no longer read, for "
                          f"neither account: name the account they are for, {testnet['api_key']} / "
                          f"{testnet['api_secret']} (testnet) or {live['api_key']} / {live['api_secret']} (live), "
                          f"or [{exchange}.testnet] / [{exchange}.live] in the secrets file; "
                          f"{mode} keys were asked for")
    unknown = sorted(set(section) - set(MODES))
    if unknown:
        raise ConfigError(f"secrets file {path}: [{exchange}] has unknown keys {unknown}; "
                          f"only [{exchange}.testnet] and [{exchange}.live]")


def _read_secrets_file(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"secrets file {path} is readable by others: chmod 600 {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"secrets file {path} is not valid TOML: {err}") from None
