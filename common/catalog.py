"""The table catalog: every Delta table of the lake, its schema, partitioning and properties.

`common/init_tables.py` creates them; `register_tables` makes them visible by name
(`bronze.binance_klines`) in every session. Tables live at <lake root>/<database>/<table>.
Times are UTC epoch milliseconds (`*_ms`) beside a TIMESTAMP; money in the trading tables is
DECIMAL(38,18), rounded to the market's precision by the code that writes it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from common.config import AppConfig

log = logging.getLogger(__name__)

DATABASES = ("bronze", "silver", "gold", "trading")
MONEY = "DECIMAL(38,18)"


@dataclass(frozen=True)
class TableSpec:
    database: str
    name: str
    columns: str  # Spark SQL DDL column list
    partitioned_by: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)
    comment: str = ""

    @property
    def qualified_name(self) -> str:
        return f"{self.database}.{self.name}"

    def column_names(self) -> list[str]:
        from pyspark.sql.types import StructType

        return StructType.fromDDL(self.columns).fieldNames()


APPEND_ONLY = {"delta.appendOnly": "true"}
# Downstream streams read silver's MERGEd changes through the change data feed.
CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}

KAFKA_RAW_COLUMNS = """
    key STRING,
    value STRING,
    topic STRING NOT NULL,
    partition INT NOT NULL,
    offset BIGINT NOT NULL,
    kafka_timestamp TIMESTAMP,
    ingested_at TIMESTAMP NOT NULL,
    ingest_date DATE NOT NULL
"""

# A bar's times and prices, as every kline table holds them.
BAR_COLUMNS = """
    open_time_ms BIGINT NOT NULL,
    open_time TIMESTAMP NOT NULL,
    close_time_ms BIGINT NOT NULL,
    open DOUBLE NOT NULL,
    high DOUBLE NOT NULL,
    low DOUBLE NOT NULL,
    close DOUBLE NOT NULL,"""
KLINE_COLUMNS = """
    exchange STRING NOT NULL,
    symbol STRING NOT NULL,
    exchange_symbol STRING,
    ccxt_symbol STRING,
    interval STRING NOT NULL,""" + BAR_COLUMNS + """
    volume DOUBLE NOT NULL,
    quote_volume DOUBLE,
    trade_count BIGINT,
    source STRING,
    schema_version INT,
    produced_at_ms BIGINT,
    kafka_topic STRING,
    kafka_partition INT,
    kafka_offset BIGINT,
    ingested_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
"""

# Funding rate, open interest and long/short ratio, one row per metric and time.
MARKET_COLUMNS = """
    exchange STRING NOT NULL,
    symbol STRING NOT NULL,
    exchange_symbol STRING,
    ccxt_symbol STRING,
    metric STRING NOT NULL,
    period STRING NOT NULL,
    ts_ms BIGINT NOT NULL,
    ts TIMESTAMP NOT NULL,
    value DOUBLE NOT NULL,
    value_usd DOUBLE,
    long_share DOUBLE,
    short_share DOUBLE,
    source STRING,
    schema_version INT,
    produced_at_ms BIGINT,
    kafka_topic STRING,
    kafka_partition INT,
    kafka_offset BIGINT,
    ingested_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
"""


def _exchange_tables(exchange: str) -> list[TableSpec]:
    return [
        TableSpec("bronze", f"{exchange}_klines", KAFKA_RAW_COLUMNS, ("ingest_date",), APPEND_ONLY,
                  f"Raw Kafka messages of klines.{exchange}, exactly as received"),
        TableSpec("bronze", f"{exchange}_market", KAFKA_RAW_COLUMNS, ("ingest_date",), APPEND_ONLY,
                  f"Raw Kafka messages of market.{exchange}, exactly as received"),
        TableSpec("silver", f"{exchange}_klines", KLINE_COLUMNS, ("interval",), CHANGE_FEED,
                  f"Validated, deduplicated {exchange} klines; key (exchange, symbol, interval, open_time_ms)"),
        TableSpec("silver", f"{exchange}_market", MARKET_COLUMNS, ("metric",), CHANGE_FEED,
                  f"Validated {exchange} funding, open interest and long/short ratio"),
    ]


SHARED_TABLES = [
    TableSpec("silver", "quarantine", """
        quarantine_id STRING NOT NULL,
        source_table STRING NOT NULL,
        exchange STRING,
        kind STRING NOT NULL,
        reason STRING NOT NULL,
        detail STRING,
        raw_key STRING,
        raw_value STRING,
        kafka_topic STRING,
        kafka_partition INT,
        kafka_offset BIGINT,
        kafka_timestamp TIMESTAMP,
        ingested_at TIMESTAMP,
        quarantined_at TIMESTAMP NOT NULL,
        quarantine_date DATE NOT NULL
    """, ("quarantine_date",), {}, "Rows that failed validation, with the reason and Kafka coordinates"),
    TableSpec("silver", "unified_klines", KLINE_COLUMNS, ("interval",), CHANGE_FEED,
              "Klines of every exchange in one schema, canonical symbols"),
    TableSpec("silver", "unified_market", MARKET_COLUMNS, ("metric",), CHANGE_FEED,
              "Market metrics of every exchange in one schema, canonical symbols"),
    TableSpec("silver", "consolidated_klines", """
        symbol STRING NOT NULL,
        interval STRING NOT NULL,""" + BAR_COLUMNS + """
        vwap DOUBLE,
        volume DOUBLE NOT NULL,
        quote_volume DOUBLE,
        trade_count BIGINT,
        exchange_count INT NOT NULL,
        exchanges ARRAY<STRING>,
        updated_at TIMESTAMP NOT NULL
    """, ("interval",), CHANGE_FEED,
              "One cross-exchange kline per (symbol, interval, open_time): summed volume, volume-weighted prices"),
    TableSpec("gold", "bos_warnings", """
        event_id STRING NOT NULL,
        exchange STRING NOT NULL,
        symbol STRING NOT NULL,
        interval STRING NOT NULL,
        event_type STRING NOT NULL,
        direction STRING NOT NULL,
        level DOUBLE NOT NULL,
        swing_time_ms BIGINT,
        swing_confirmed_ms BIGINT,
        bar_time_ms BIGINT NOT NULL,
        bar_close DOUBLE,
        distance_atr DOUBLE,
        atr DOUBLE,
        known_at_ms BIGINT NOT NULL,
        created_at TIMESTAMP NOT NULL
    """, ("interval",), APPEND_ONLY,
        "Breaks of structure (BOS), changes of character (CHOCH) and approach warnings (WARNING); "
        "exchange 'consolidated' = the cross-exchange klines"),
    TableSpec("gold", "liquidity_zones", """
        zone_id STRING NOT NULL,
        exchange STRING NOT NULL,
        symbol STRING NOT NULL,
        interval STRING NOT NULL,
        zone_type STRING NOT NULL,
        source STRING,
        is_liquidity_pool BOOLEAN,
        swing_count INT,
        window_bars INT,
        window_start_ms BIGINT,
        window_end_ms BIGINT,
        window_poc DOUBLE,
        value_area_low DOUBLE,
        value_area_high DOUBLE,
        zone_low DOUBLE NOT NULL,
        zone_high DOUBLE NOT NULL,
        level DOUBLE,
        poc_price DOUBLE,
        volume DOUBLE,
        volume_share DOUBLE,
        touches INT,
        rejections INT,
        sweeps INT,
        breaks INT,
        status STRING NOT NULL,
        quality DOUBLE,
        created_ms BIGINT,
        age_bars INT,
        atr DOUBLE,
        known_at_ms BIGINT NOT NULL,
        version INT,
        touched_now BOOLEAN,
        swept_now BOOLEAN,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL
    """, ("interval",), APPEND_ONLY,
        "Versions of demand/supply zones and liquidity pools: a row per change (version 1, 2, ...), the "
        "highest version known by a time is the zone as known then"),
    TableSpec("gold", "sentiment_scores", """
        exchange STRING NOT NULL,
        symbol STRING NOT NULL,
        interval STRING NOT NULL,
        ts_ms BIGINT NOT NULL,
        funding_rate DOUBLE,
        funding_zscore DOUBLE,
        open_interest DOUBLE,
        open_interest_change_pct DOUBLE,
        price_change_pct DOUBLE,
        long_short_ratio DOUBLE,
        taker_buy_ratio DOUBLE,
        sentiment_score DOUBLE NOT NULL,
        confidence DOUBLE,
        label STRING,
        known_at_ms BIGINT NOT NULL,
        created_at TIMESTAMP NOT NULL
    """, ("interval",), APPEND_ONLY,
        "Sentiment from funding, open interest, long/short and taker buy/sell ratios, -100..100"),
    TableSpec("gold", "analytics_state", """
        exchange STRING NOT NULL,
        symbol STRING NOT NULL,
        interval STRING NOT NULL,
        last_bar_ms BIGINT,
        state_json STRING NOT NULL,
        updated_at TIMESTAMP NOT NULL
    """, (), {}, "Where the analytics of each series stopped: trend, unbroken swings, active zones"),
    TableSpec("gold", "signals_all", """
        signal_id STRING NOT NULL,
        strategy STRING NOT NULL,
        exchange STRING NOT NULL,
        symbol STRING NOT NULL,
        interval STRING NOT NULL,
        direction STRING NOT NULL,
        status STRING NOT NULL,
        status_reason STRING,
        trigger_bar_time_ms BIGINT NOT NULL,
        known_at_ms BIGINT NOT NULL,
        zone_id STRING,
        bos_event_id STRING,
        lineage STRING,
        zone_low DOUBLE,
        zone_high DOUBLE,
        atr DOUBLE,
        target_levels STRING,
        zone_quality DOUBLE,
        zone_touches INT,
        zone_rejections INT,
        side_rejections INT,
        side_breaks INT,
        bos_type STRING,
        bos_direction STRING,
        bos_distance_atr DOUBLE,
        bos_age_bars INT,
        htf_trend_agree INT,
        htf_zone_overlap INT,
        htf_in_value_area INT,
        confluence_intervals STRING,
        htf_count INT,
        entry_price DOUBLE,
        sl_price DOUBLE,
        tp1_price DOUBLE,
        tp2_price DOUBLE,
        rr_tp1 DOUBLE,
        rr_tp2 DOUBLE,
        score DOUBLE,
        score_zone_quality DOUBLE,
        score_bos DOUBLE,
        score_confluence DOUBLE,
        score_sentiment DOUBLE,
        score_zone_behaviour DOUBLE,
        sentiment_score DOUBLE,
        scored_as_of_ms BIGINT,
        calibration_version STRING,
        created_at TIMESTAMP NOT NULL,
        scored_at TIMESTAMP,
        updated_at TIMESTAMP NOT NULL
    """, (), {}, "Every setup the scanner found (with its lineage, the analytics it used and the higher "
                 "timeframes' confluence), its score components, trade plan and status"),
    TableSpec("gold", "scorer_calibration", """
        calibration_version STRING NOT NULL,
        component STRING NOT NULL,
        bucket STRING NOT NULL,
        bucket_low DOUBLE,
        bucket_high DOUBLE,
        trades BIGINT NOT NULL,
        win_rate DOUBLE,
        avg_r DOUBLE,
        points DOUBLE,
        weight DOUBLE,
        data_start_ms BIGINT,
        data_end_ms BIGINT,
        source STRING,
        created_at TIMESTAMP NOT NULL
    """, (), {}, "Realised outcomes per score component and bucket, and the weights derived from them"),
    TableSpec("gold", "trading_config", """
        param_name STRING NOT NULL,
        param_value STRING NOT NULL,
        value_type STRING NOT NULL,
        description STRING,
        updated_at TIMESTAMP NOT NULL
    """, (), {"delta.enableChangeDataFeed": "true"},  # every change audited from the feed: common/config_audit.py
        "Trading parameters; change them with UPDATE ... SET param_value = ..."),
    TableSpec("gold", "sanity_results", """
        run_id STRING NOT NULL,
        check_name STRING NOT NULL,
        table_name STRING NOT NULL,
        exchange STRING,
        symbol STRING,
        interval STRING,
        status STRING NOT NULL,
        observed DOUBLE,
        expected DOUBLE,
        detail STRING,
        checked_at TIMESTAMP NOT NULL,
        check_date DATE NOT NULL
    """, ("check_date",), APPEND_ONLY, "Results of the sanity checks, one row per check and scope"),
    TableSpec("gold", "job_runs", """
        run_id STRING NOT NULL,
        job STRING NOT NULL,
        started_at TIMESTAMP NOT NULL,
        ended_at TIMESTAMP,
        duration_s DOUBLE,
        status STRING NOT NULL,
        rows_in BIGINT,
        rows_out BIGINT,
        error STRING,
        host STRING,
        details STRING
    """, (), {}, "Every run of every job: start, end, status, rows in and out, error"),
    TableSpec("gold", "backtest_results", f"""
        run_id STRING NOT NULL,
        run_timestamp TIMESTAMP NOT NULL,
        scope STRING NOT NULL,
        strategy STRING,
        exchange STRING,
        symbol STRING,
        interval STRING,
        window STRING,
        start_ms BIGINT,
        end_ms BIGINT,
        data_version BIGINT,
        config_json STRING,
        initial_capital {MONEY},
        final_equity {MONEY},
        total_return_pct DOUBLE,
        cagr DOUBLE,
        sharpe DOUBLE,
        sortino DOUBLE,
        calmar DOUBLE,
        max_drawdown_pct DOUBLE,
        max_drawdown_duration_days DOUBLE,
        win_rate DOUBLE,
        profit_factor DOUBLE,
        expectancy {MONEY},
        avg_r DOUBLE,
        avg_hold_minutes DOUBLE,
        max_consecutive_wins INT,
        max_consecutive_losses INT,
        trades INT,
        exposure_pct DOUBLE
    """, (), {}, "One row per backtest run and scope (a combination, or the portfolio)"),
    TableSpec("gold", "backtest_trades", f"""
        run_id STRING NOT NULL,
        trade_id STRING NOT NULL,
        signal_id STRING,
        strategy STRING NOT NULL,
        exchange STRING,
        symbol STRING NOT NULL,
        interval STRING NOT NULL,
        direction STRING NOT NULL,
        score DOUBLE,
        score_zone_quality DOUBLE,
        score_bos DOUBLE,
        score_confluence DOUBLE,
        score_sentiment DOUBLE,
        score_zone_behaviour DOUBLE,
        entry_time_ms BIGINT NOT NULL,
        entry_price {MONEY} NOT NULL,
        quantity {MONEY} NOT NULL,
        exit_time_ms BIGINT,
        exit_price {MONEY},
        exit_reason STRING,
        tp1_hit BOOLEAN,
        fees {MONEY},
        pnl {MONEY},
        r_multiple DOUBLE,
        hold_minutes DOUBLE,
        scope STRING
    """, (), {}, "Every simulated trade of every backtest run, per combination (scope SYMBOL|interval|strategy; "
       "pnl net of fees) and as the portfolio took it (scope portfolio: the same order resized on one account)"),
    TableSpec("gold", "backtest_equity", f"""
        run_id STRING NOT NULL,
        scope STRING NOT NULL,
        ts_ms BIGINT NOT NULL,
        ts TIMESTAMP NOT NULL,
        equity {MONEY} NOT NULL,
        drawdown_pct DOUBLE
    """, (), {}, "Equity curve of every backtest run and scope"),
    TableSpec("trading", "orders", f"""
        order_id STRING NOT NULL,
        client_order_id STRING NOT NULL,
        signal_id STRING NOT NULL,
        position_id STRING,
        exchange STRING NOT NULL,
        symbol STRING NOT NULL,
        ccxt_symbol STRING,
        leg STRING NOT NULL,
        version INT NOT NULL,
        side STRING NOT NULL,
        order_type STRING NOT NULL,
        reduce_only BOOLEAN NOT NULL,
        price {MONEY},
        stop_price {MONEY},
        amount {MONEY} NOT NULL,
        filled {MONEY},
        average_price {MONEY},
        fee {MONEY},
        fee_currency STRING,
        status STRING NOT NULL,
        exchange_order_id STRING,
        mode STRING NOT NULL,
        error STRING,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        account STRING,
        close_position BOOLEAN
    """, (), {}, "Every order placed (or to be placed), one row per client order id, with the account it is for "
       "(exchange, mode, account: paper or a fingerprint of the API key)"),
    TableSpec("trading", "positions_open", f"""
        position_id STRING NOT NULL,
        signal_id STRING NOT NULL,
        strategy STRING,
        exchange STRING NOT NULL,
        symbol STRING NOT NULL,
        interval STRING,
        direction STRING NOT NULL,
        status STRING NOT NULL,
        entry_price {MONEY} NOT NULL,
        quantity {MONEY} NOT NULL,
        remaining_quantity {MONEY} NOT NULL,
        sl_price {MONEY} NOT NULL,
        tp1_price {MONEY},
        tp2_price {MONEY},
        tp1_hit BOOLEAN NOT NULL,
        sl_at_breakeven BOOLEAN NOT NULL,
        realized_pnl {MONEY},
        fees {MONEY},
        mode STRING NOT NULL,
        opened_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        account STRING
    """, (), {}, "Positions being managed: remaining size, SL (moved to breakeven after TP1), TPs"),
    TableSpec("trading", "positions_closed", f"""
        position_id STRING NOT NULL,
        signal_id STRING NOT NULL,
        strategy STRING,
        exchange STRING NOT NULL,
        symbol STRING NOT NULL,
        interval STRING,
        direction STRING NOT NULL,
        entry_price {MONEY} NOT NULL,
        exit_price {MONEY} NOT NULL,
        quantity {MONEY} NOT NULL,
        realized_pnl {MONEY} NOT NULL,
        fees {MONEY} NOT NULL,
        net_pnl {MONEY} NOT NULL,
        r_multiple DOUBLE,
        exit_reason STRING NOT NULL,
        mode STRING NOT NULL,
        opened_at TIMESTAMP NOT NULL,
        closed_at TIMESTAMP NOT NULL,
        hold_minutes DOUBLE,
        close_date DATE NOT NULL,
        account STRING
    """, ("close_date",), {}, "Closed positions with their realised P&L and exit reason"),
    TableSpec("trading", "daily_pnl", f"""
        pnl_date DATE NOT NULL,
        exchange STRING NOT NULL,
        mode STRING NOT NULL,
        trades INT NOT NULL,
        wins INT NOT NULL,
        losses INT NOT NULL,
        realized_pnl {MONEY} NOT NULL,
        fees {MONEY} NOT NULL,
        net_pnl {MONEY} NOT NULL,
        equity_start {MONEY},
        equity_end {MONEY},
        updated_at TIMESTAMP NOT NULL,
        account STRING
    """, (), {}, "Realised P&L per UTC day, exchange, mode and account"),
    TableSpec("trading", "audit_log", """
        event_id STRING NOT NULL,
        entity_type STRING NOT NULL,
        entity_id STRING NOT NULL,
        from_status STRING,
        to_status STRING,
        reason STRING NOT NULL,
        details STRING,
        actor STRING NOT NULL,
        event_time TIMESTAMP NOT NULL,
        event_date DATE NOT NULL
    """, ("event_date",), APPEND_ONLY, "Every state change of a signal, order, position or config, with its reason"),
]


def table_specs(config: AppConfig) -> list[TableSpec]:
    """Every table of the catalog, for the exchanges the config enables."""
    per_exchange = [spec for exchange in config.exchanges.enabled for spec in _exchange_tables(exchange)]
    return per_exchange + SHARED_TABLES


def table_spec(config: AppConfig, qualified_name: str) -> TableSpec:
    for spec in table_specs(config):
        if spec.qualified_name == qualified_name:
            return spec
    raise KeyError(f"no table {qualified_name} in the catalog")


def table_location(config: AppConfig, spec: TableSpec) -> str:
    return config.lake.table_path(spec.database, spec.name)


def location_of(config: AppConfig, qualified_name: str) -> str:
    """Where a table of the catalog lives, by its name ("gold.signals_all")."""
    return table_location(config, table_spec(config, qualified_name))


def read_table(spark, config: AppConfig, qualified_name: str):
    """A table of the catalog as a DataFrame, by its path (no metastore needed)."""
    return spark.read.format("delta").load(location_of(config, qualified_name))


def known_by(column: str, as_of_ms: int | None):
    """The rows whose time `column` is at or before `as_of_ms` (a replay stepping through
    history); every row when as_of_ms is None."""
    from pyspark.sql import functions as F

    return F.lit(True) if as_of_ms is None else F.col(column) <= F.lit(as_of_ms)


def create_database_sql(config: AppConfig, database: str) -> str:
    location = f"{config.lake.root.rstrip('/')}/{database}"
    return f"CREATE DATABASE IF NOT EXISTS {database} LOCATION '{location}'"


def create_table_sql(config: AppConfig, spec: TableSpec) -> str:
    """DDL that creates the table (or, over an existing Delta log, only registers it)."""
    parts = [f"CREATE TABLE IF NOT EXISTS {spec.qualified_name} ({spec.columns.strip()})", "USING DELTA"]
    if spec.partitioned_by:
        parts.append(f"PARTITIONED BY ({', '.join(spec.partitioned_by)})")
    parts.append(f"LOCATION '{table_location(config, spec)}'")
    if spec.comment:
        parts.append("COMMENT '" + spec.comment.replace("'", "\\'") + "'")
    if spec.properties:
        props = ", ".join(f"'{k}' = '{v}'" for k, v in spec.properties.items())
        parts.append(f"TBLPROPERTIES ({props})")
    return "\n".join(parts)


def register_table_sql(config: AppConfig, spec: TableSpec) -> str:
    """Metadata-only: name an existing Delta table; its schema comes from its log."""
    return f"CREATE TABLE IF NOT EXISTS {spec.qualified_name} USING DELTA LOCATION '{table_location(config, spec)}'"


def delta_table_exists(spark, location: str) -> bool:
    """Whether a Delta log is at `location`, asked of Hadoop's FileSystem (any URI scheme)."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(f"{location.rstrip('/')}/_delta_log")
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs.exists(path)


def register_tables(spark, config: AppConfig) -> list[str]:
    """Name every existing lake table in this session's catalog; returns the missing ones."""
    missing = []
    for database in DATABASES:
        spark.sql(create_database_sql(config, database))
    for spec in table_specs(config):
        if delta_table_exists(spark, table_location(config, spec)):
            spark.sql(register_table_sql(config, spec))
        else:
            missing.append(spec.qualified_name)
    known = {spec.qualified_name for spec in table_specs(config)}
    for database in DATABASES:
        for name in _other_delta_tables(spark, f"{config.lake.root.rstrip('/')}/{database}"):
            if f"{database}.{name}" not in known:  # e.g. a replay's fresh bronze table
                spark.sql(f"CREATE TABLE IF NOT EXISTS {database}.{name} USING DELTA "
                          f"LOCATION '{config.lake.root.rstrip('/')}/{database}/{name}'")
    if missing:
        log.debug("event=tables_not_created tables=%s hint='run cryptobot init'", ",".join(missing))
    return missing


def _other_delta_tables(spark, database_location: str) -> list[str]:
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(database_location)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(path):
        return []
    names = []
    for status in fs.listStatus(path):
        name = status.getPath().getName()
        if status.isDirectory() and name.replace("_", "").isalnum() and fs.exists(
                jvm.org.apache.hadoop.fs.Path(status.getPath(), "_delta_log")):
            names.append(name)
    return sorted(names)


def registration_script(config: AppConfig) -> str:
    """The same registration as SQL, for `spark-sql -i` (see `make sql`)."""
    statements = [create_database_sql(config, db) for db in DATABASES]
    statements += [register_table_sql(config, spec) for spec in table_specs(config)]
    return ";\n".join(statements) + ";\n"
