"""The backtest report (common/backtest/report.py) on hand-made rows of one run: the page and its charts are
written, the page shows every scope's metrics and escapes text, the monthly returns and the win rate per score
bucket match hand-computed values, and the edge cases (no trades, one equity point, all winners, missing
metrics) still give a report."""
import math
from decimal import Decimal

import pandas as pd
import pytest

from common.backtest.report import CHARTS, MAX_TRADES_SHOWN, monthly_returns, win_rate_by_score, write_report

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
DAY_MS = 86_400_000
JAN_31 = T0 + 30 * DAY_MS + 3_600_000  # 2026-01-31 01:00
FEB_28 = T0 + 58 * DAY_MS + 3_600_000  # 2026-02-28 01:00
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RUN = "run-42"
BTC, EVIL = "BTCUSDT|1h|smc", "ETH<script>|4h|smc"


def result_row(scope, total_return_pct, trades, win_rate, **overrides):
    row = {"run_id": RUN, "run_timestamp": pd.Timestamp("2026-03-01 12:00"), "scope": scope, "strategy": "smc",
           "exchange": "binance", "symbol": None, "interval": None, "window": "all", "start_ms": T0,
           "end_ms": FEB_28, "data_version": 7, "config_json": '{"note": "<script>alert(1)</script>"}',
           "initial_capital": Decimal("10000"), "final_equity": Decimal("9900"),
           "total_return_pct": total_return_pct, "cagr": -0.05, "sharpe": 0.5, "sortino": math.inf, "calmar": None,
           "max_drawdown_pct": -10.0, "max_drawdown_duration_days": 28.0, "win_rate": win_rate,
           "profit_factor": float("nan"), "expectancy": Decimal("-14.28"), "avg_r": 0.3, "avg_hold_minutes": 90.0,
           "max_consecutive_wins": 2, "max_consecutive_losses": 1, "trades": trades, "exposure_pct": 12.5}
    return {**row, **overrides}


def trade_row(n, score, pnl, r_multiple, scope=BTC, exit_ms=None):
    symbol, interval, strategy = scope.split("|")
    exit_time_ms = exit_ms or T0 + (n + 1) * 5 * DAY_MS
    return {"run_id": RUN, "trade_id": f"{RUN}:s{n}", "signal_id": f"s{n}", "strategy": strategy,
            "exchange": "binance", "symbol": symbol, "interval": interval, "direction": "long", "score": score,
            "entry_time_ms": exit_time_ms - 3_600_000, "entry_price": Decimal("100.5"), "quantity": Decimal("1"),
            "exit_time_ms": exit_time_ms, "exit_price": Decimal("101"), "exit_reason": "tp2", "tp1_hit": True,
            "fees": Decimal("0.1"), "pnl": None if pnl is None else Decimal(str(pnl)), "r_multiple": r_multiple,
            "hold_minutes": 60.0}


def equity_frame(curves: dict[str, dict[int, float]]) -> pd.DataFrame:
    rows = [{"run_id": RUN, "scope": scope, "ts_ms": ts_ms, "ts": pd.Timestamp(ts_ms, unit="ms"),
             "equity": Decimal(str(value)), "drawdown_pct": None}
            for scope, curve in curves.items() for ts_ms, value in curve.items()]
    return pd.DataFrame(rows)


# (score, net P&L, R): 50-60: 1 of 1 won; 60-70: 0 of 1; 70-80: 2 of 2; 80-90: 0 of 2 (a scratch is no win);
# 90-100: 2 of 2 (100 itself included); a trade without a score is in no bucket.
SCORED_TRADES = [(55.0, 120, 1.2), (65.0, -100, -1.0), (70.0, 50, 0.5), (79.9, 300, 3.0), (80.0, -100, -1.0),
                 (89.0, 0, 0.0), (90.0, 200, 2.0), (100.0, 80, 0.8), (None, 10, 0.1)]


def run_frames():
    results = pd.DataFrame([result_row(BTC, 12.34, 8, 0.625), result_row("portfolio", -1.0, 9, 0.5555),
                            result_row(EVIL, -5.67, 1, None, sharpe=None)])
    trades = pd.DataFrame([trade_row(n, score, pnl, r) for n, (score, pnl, r) in enumerate(SCORED_TRADES[:-1])]
                          + [trade_row(99, None, 10, 0.1, scope=EVIL)])
    equity = equity_frame({"portfolio": {T0: 10_000, JAN_31: 11_000, FEB_28: 9_900},
                           BTC: {T0: 10_000, JAN_31: 11_200, FEB_28: 11_234},
                           EVIL: {T0: 10_000, FEB_28: 9_433}})
    return results, trades, equity


@pytest.fixture(scope="module")
def report_index(tmp_path_factory):
    """One run's report, written once for the tests that only read it (drawing the charts takes ~1 s)."""
    return write_report(tmp_path_factory.mktemp("run") / "report", *run_frames())


def assert_valid_charts(directory):
    for file_name, _ in CHARTS:
        content = (directory / file_name).read_bytes()
        assert content.startswith(PNG_SIGNATURE), file_name
        assert len(content) > 2_000, file_name  # a real picture, not an empty canvas


def test_the_report_writes_the_page_and_every_chart_as_png(report_index):
    assert report_index.name == "index.html" and report_index.parent.name == "report"
    assert_valid_charts(report_index.parent)
    page = report_index.read_text(encoding="utf-8")
    for file_name, _ in CHARTS:
        assert f'<img src="{file_name}"' in page


def test_the_page_shows_every_scope_with_its_metrics_portfolio_first(report_index):
    page = report_index.read_text(encoding="utf-8")
    assert "Backtest run-42" in page and "Data version:</b> 7" in page and "2026-01-01 to 2026-02-28" in page
    metrics = page.split("<h2>Metrics</h2>")[1].split("<h2>")[0]
    portfolio, btc, evil = (metrics.index(s) for s in (">portfolio<", ">BTCUSDT|1h|smc<", ">ETH&lt;script&gt;"))
    assert portfolio < btc < evil
    assert ">-1.00<" in metrics and ">12.34<" in metrics and ">-5.67<" in metrics  # total return %
    assert ">55.55<" in metrics and ">62.50<" in metrics  # win rate as %
    assert ">∞<" in metrics and ">–<" in metrics  # infinite Sortino, missing Calmar / profit factor


def test_text_is_escaped_and_the_page_is_static(report_index):
    page = report_index.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "ETH&lt;script&gt;" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "http://" not in page and "https://" not in page


def test_monthly_returns_are_each_months_close_over_the_previous_one():
    curve = pd.Series({T0: 10_000.0, T0 + 10 * DAY_MS: 10_500.0, JAN_31: 11_000.0, FEB_28: 9_900.0})
    table = monthly_returns(curve)
    assert list(table.index) == [2026]
    assert table.loc[2026, 1] == pytest.approx(10.0)
    assert table.loc[2026, 2] == pytest.approx(-10.0)
    assert table.loc[2026, 3:].isna().all()


def test_the_first_month_is_measured_from_the_initial_capital_even_if_the_first_day_moved():
    curve = pd.Series({T0: 10_000.0, T0 + 3_600_000: 10_500.0})  # a trade closes an hour after the start
    assert monthly_returns(curve).loc[2026, 1] == pytest.approx(5.0)


def test_win_rate_by_score_buckets_hand_counted_trades():
    trades = pd.DataFrame([trade_row(n, score, pnl, r) for n, (score, pnl, r) in enumerate(SCORED_TRADES)])
    table = win_rate_by_score(trades)
    assert list(table.bucket) == ["50-60", "60-70", "70-80", "80-90", "90-100"]
    assert list(table.trades) == [1, 1, 2, 2, 2]
    assert list(table.wins) == [1, 0, 2, 0, 2]
    assert list(table.win_rate) == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_win_rate_by_score_keeps_trades_below_the_first_bucket_and_leaves_empty_buckets_without_a_rate():
    table = win_rate_by_score(pd.DataFrame([trade_row(0, 42.0, 5, 0.5), trade_row(1, 61.0, -5, -0.5)]))
    assert list(table.bucket) == ["<50", "50-60", "60-70", "70-80", "80-90", "90-100"]
    assert list(table.trades) == [1, 0, 1, 0, 0, 0]
    assert table.win_rate.iloc[0] == 1.0 and math.isnan(table.win_rate.iloc[1])


@pytest.mark.parametrize("trades", [pd.DataFrame(), pd.DataFrame(columns=list(trade_row(0, 1, 1, 1)))],
                         ids=["no columns", "no rows"])
def test_a_run_without_trades_and_a_single_equity_point_still_gives_a_report(tmp_path, trades):
    results = pd.DataFrame([result_row("portfolio", 0.0, 0, None, cagr=None, sharpe=None, sortino=None,
                                       avg_r=float("nan"), expectancy=None, avg_hold_minutes=None)])
    index = write_report(tmp_path, results, trades, equity_frame({"portfolio": {T0: 10_000}}))
    assert_valid_charts(tmp_path)
    page = index.read_text(encoding="utf-8")
    assert "No trades." in page and ">portfolio<" in page


def test_all_winners_and_many_trades_show_only_the_last_ones(tmp_path):
    results, _, equity = run_frames()
    count = MAX_TRADES_SHOWN + 20
    trades = pd.DataFrame([trade_row(n, 75.0, 10, 1.0, exit_ms=T0 + (n + 1) * 60_000) for n in range(count)])
    page = write_report(tmp_path, results, trades, equity).read_text(encoding="utf-8")
    assert_valid_charts(tmp_path)
    assert f"The last {MAX_TRADES_SHOWN} of {count} trades" in page
    trade_table = page.split("<h2>Trades</h2>")[1]
    assert trade_table.count("<tr>") == MAX_TRADES_SHOWN + 1  # the header, then the trades shown
    assert "2025-12-31 23:01" not in trade_table and "2026-01-01 08:40" in trade_table  # the first left out
