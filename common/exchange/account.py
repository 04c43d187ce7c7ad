"""Which account orders go to, and the gateway that reaches it: the paper exchange (the default),
an exchange's testnet, or, opted in explicitly, its live account. Every read and write of trading
state is scoped to the account of the gateway in use (`TradingAccount`), so a paper order is never
sent to a real account and a testnet's position is never managed with live keys."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from common.config import AppConfig, ConfigError
from common.exchange.paper import PaperExchange
from common.trading_config import TradingConfig

LIVE_CONFIRMATION_ENV = "CRYPTOBOT_LIVE_TRADING"
PAPER_ACCOUNT = "paper"


@dataclass(frozen=True)
class TradingAccount:
    """(exchange, mode, account): paper's account is `paper`; a testnet's or live one is named by a
    fingerprint of its API key (never the key), so another key is another account."""
    exchange: str
    mode: str  # paper | testnet | live
    account: str

    def describe(self) -> str:
        return f"{self.exchange} {self.mode} account {self.account}"


def account_of(gateway) -> TradingAccount:
    return TradingAccount(gateway.name, gateway.mode, getattr(gateway, "account", PAPER_ACCOUNT))


def key_fingerprint(api_key: str) -> str:
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:10]


def check_live_allowed(trading: TradingConfig, env=None) -> None:
    """Live trading (paper_trading = false and use_testnet = false) needs the environment's
    explicit confirmation as well, naming the exchange that gets real money: a leftover `yes`
    from another setup, or the name of another exchange, confirms nothing. Anything else is
    refused before a single call is made."""
    env = os.environ if env is None else env
    if not trading.is_live:
        return
    exchange = trading.trading_exchange
    confirmed = (env.get(LIVE_CONFIRMATION_ENV) or "").strip()
    if confirmed.lower() == exchange:
        return
    if not confirmed:
        why = f"but {LIVE_CONFIRMATION_ENV} is not set in the environment"
    elif confirmed.lower() == "yes":
        why = f"but {LIVE_CONFIRMATION_ENV}=yes no longer confirms it: it must name the exchange"
    else:
        why = f"but {LIVE_CONFIRMATION_ENV}={confirmed} is not {exchange}"
    raise ConfigError(f"live trading refused: gold.trading_config has paper_trading = false and use_testnet = "
                      f"false, {why}. Set {LIVE_CONFIRMATION_ENV}={exchange} to trade real money on {exchange}, "
                      f"or set use_testnet = true.")


def build_gateway(config: AppConfig, trading: TradingConfig):
    check_live_allowed(trading)
    if trading.paper_trading:
        return PaperExchange(trading.trading_exchange, paper_state_path(config, trading.trading_exchange),
                             Decimal(str(trading.paper_initial_equity_usdt)), Decimal(str(trading.maker_fee_pct)),
                             Decimal(str(trading.taker_fee_pct)), Decimal(str(trading.slippage_bps)),
                             leverage=Decimal(str(trading.max_leverage)))
    return ccxt_gateway(config, trading)


def ccxt_gateway(config: AppConfig, trading: TradingConfig, env=None):
    """The exchange's testnet (or, confirmed, live) account through ccxt, markets loaded."""
    from common.exchange.ccxt_factory import create_ccxt_exchange
    from common.exchange.ccxt_gateway import TRADABLE, CcxtGateway
    from common.exchange.retry import RetryPolicy, call_with_retry
    from common.secrets import env_names, load_exchange_credentials

    exchange = trading.trading_exchange
    mode = "testnet" if trading.use_testnet else "live"
    if exchange not in TRADABLE:
        raise ConfigError(f"trading_exchange = {exchange}: orders go through ccxt only to {', '.join(TRADABLE)}")
    check_live_allowed(trading, env)
    if mode == "live" and config.execution.api_base_url:
        # Another host would see every signed live request: real money goes to the exchange's own endpoints.
        raise ConfigError(f"live trading refused: [execution] api_base_url = {config.execution.api_base_url!r} "
                          f"(CRYPTOBOT_EXECUTION__API_BASE_URL) is for the testnet and tests only; empty it to trade "
                          f"live on {exchange}'s own endpoints")
    # The testnet's and the live account's keys have names of their own: a testnet setup has no key
    # that could sign a live order.
    credentials = load_exchange_credentials(exchange, mode, env)
    if credentials is None:
        names = env_names(exchange, mode)
        raise ConfigError(f"paper_trading = false with use_testnet = {str(trading.use_testnet).lower()} needs "
                          f"{exchange} {mode} API keys: set {names['api_key']} and {names['api_secret']}, or put "
                          f"them under [{exchange}.{mode}] in the secrets file (README, Secrets)")
    client = create_ccxt_exchange(exchange, config.exchanges.market_type, api_base_url=config.execution.api_base_url,
                                  credentials=credentials, sandbox=trading.use_testnet,
                                  timeout_ms=config.execution.request_timeout_ms)
    retry = RetryPolicy(max_attempts=config.execution.retry_max_attempts)
    call_with_retry(client.load_markets, retry, f"{exchange} load_markets")
    return CcxtGateway(client, exchange, mode, config.exchanges.symbol_map, retry,
                       account=key_fingerprint(credentials.api_key))


def paper_state_path(config: AppConfig, exchange: str) -> Path:
    return Path(config.paths.data_dir) / "paper_exchange" / f"{exchange}.json"
