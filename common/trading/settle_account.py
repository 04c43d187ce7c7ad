"""Settling trading state before a switch of account (mode, exchange or API key): `cryptobot
settle`, a spark-submit target.

The execution engine and the position manager refuse to trade while another account has
active orders or open positions. Two ways to clear that:
- on the account that holds them (switch gold.trading_config back to it): `cryptobot settle`
  cancels every working entry, closes every open position at market (reduce-only) and cancels
  its protective orders, in one position manager turn; the next turns book the closes.
- paper state only: `cryptobot settle --abandon-paper` marks the paper account's active orders
  cancelled and its open positions abandoned, without touching any exchange, each audited with
  the OS user who did it. Real accounts are never abandoned: their orders and positions exist.
"""
from __future__ import annotations

import getpass
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common.catalog import location_of, read_table
from common.config import AppConfig, ConfigError
from common.exchange.account import PAPER_ACCOUNT
from common.trading import position_manager
from common.trading.trading_store import ACTIVE_ORDERS, audit, read_orders, write_orders
from common.trading_config import TradingConfig, read_trading_config

log = logging.getLogger(__name__)
ACTOR = "settle"


@dataclass
class SettleResult:
    orders_abandoned: int = 0
    positions_abandoned: list[str] = field(default_factory=list)
    manager: position_manager.ManagerResult | None = None

    @property
    def rows_out(self) -> int:
        return self.orders_abandoned + len(self.positions_abandoned) + (self.manager.rows_out if self.manager else 0)

    def describe(self) -> str:
        if self.manager is not None:
            return "settled the configured account:\n" + self.manager.describe()
        return (f"paper state abandoned: {self.orders_abandoned} active orders marked cancelled, "
                f"{len(self.positions_abandoned)} open positions marked abandoned")


def run(spark: SparkSession, config: AppConfig, abandon_paper: bool = False, gateway=None,
        trading: TradingConfig | None = None) -> SettleResult:
    trading = trading if trading is not None else read_trading_config(spark)
    if abandon_paper:
        return abandon_paper_state(spark, config, trading)
    return SettleResult(manager=position_manager.run(spark, config, gateway, trading=trading, settle=True))


def abandon_paper_state(spark: SparkSession, config: AppConfig, trading: TradingConfig) -> SettleResult:
    """Mark the paper account's active orders cancelled and its open positions abandoned."""
    if trading.paper_trading:
        raise ConfigError("settle --abandon-paper: paper is the configured account; `cryptobot settle` closes "
                          "its positions and cancels its orders instead")
    user = getpass.getuser()
    reason = f"abandoned by {user} (settle --abandon-paper) before trading another account"
    paper = f"mode = 'paper' AND coalesce(account, '{PAPER_ACCOUNT}') = '{PAPER_ACCOUNT}'"
    result = SettleResult()
    orders = read_orders(spark, config, f"{ACTIVE_ORDERS} AND {paper}")

    write_orders(spark, config, [replace(o, status="canceled", error=reason) for o in orders])
    positions = read_table(spark, config, "trading.positions_open").where(paper).collect()
    events = [{"entity_type": "order", "entity_id": o.client_order_id, "from_status": o.status,
               "to_status": "canceled", "reason": reason, "actor": ACTOR} for o in orders]
    events += [{"entity_type": "position", "entity_id": p.position_id, "from_status": p.status,
                "to_status": "abandoned", "reason": reason,
                "details": {"symbol": p.symbol, "remaining_quantity": str(p.remaining_quantity),
                            "at": datetime.now(timezone.utc).isoformat()}, "actor": ACTOR} for p in positions]
    audit(spark, config, events)  # before the rows go: what was abandoned stays on record
    if positions:
        DeltaTable.forPath(spark, location_of(config, "trading.positions_open")).delete(
            F.col("position_id").isin([p.position_id for p in positions]) & (F.col("mode") == "paper"))
    result.orders_abandoned, result.positions_abandoned = len(orders), [p.position_id for p in positions]
    log.warning("event=paper_state_abandoned user=%s orders=%d positions=%d", user, len(orders), len(positions))
    return result
