"""Exchange API credentials: from the environment or a secrets file outside the repo.

Never from a table, never logged (the repr masks them). Names:
  CRYPTOBOT_<EXCHANGE>_API_KEY, CRYPTOBOT_<EXCHANGE>_API_SECRET, CRYPTOBOT_<EXCHANGE>_API_PASSWORD
  (the password is OKX's passphrase), e.g. CRYPTOBOT_BYBIT_API_KEY.
or a TOML file at CRYPTOBOT_SECRETS_FILE (default ~/.config/cryptobot/secrets.toml):
  [bybit]
  api_key = "..."
  api_secret = "..."
The environment wins over the file. The file must be readable by its owner only (chmod 600).
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


@dataclass(frozen=True)
class ExchangeCredentials:
    exchange: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    password: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"ExchangeCredentials(exchange={self.exchange!r}, api_key='{mask(self.api_key)}')"


def mask(secret: str) -> str:
    return f"{secret[:3]}…{len(secret)} chars" if len(secret) > 8 else "***"


def load_exchange_credentials(exchange: str, env: Mapping[str, str] | None = None) -> ExchangeCredentials | None:
    """The exchange's credentials, or None where none are configured (paper trading needs none)."""
    env = os.environ if env is None else env
    prefix = f"CRYPTOBOT_{exchange.upper()}_"
    from_file = _read_secrets_file(Path(env.get("CRYPTOBOT_SECRETS_FILE", DEFAULT_SECRETS_FILE))).get(exchange, {})
    api_key = env.get(prefix + "API_KEY") or from_file.get("api_key")
    api_secret = env.get(prefix + "API_SECRET") or from_file.get("api_secret")
    password = env.get(prefix + "API_PASSWORD") or from_file.get("api_password")
    if not api_key and not api_secret:
        return None
    if not (api_key and api_secret):
        raise ConfigError(f"{exchange}: both {prefix}API_KEY and {prefix}API_SECRET are needed, one is missing")
    return ExchangeCredentials(exchange, api_key, api_secret, password)


def _read_secrets_file(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"secrets file {path} is readable by others: chmod 600 {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"secrets file {path} is not valid TOML: {err}") from None
