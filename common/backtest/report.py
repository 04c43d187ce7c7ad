"""The backtest report that `cryptobot backtest --report DIR` writes: one run's rows of gold.backtest_results,
gold.backtest_trades and gold.backtest_equity (pandas frames, already filtered to the run) in, DIR/index.html and
its PNG charts out. A static page: inline CSS, every text escaped, no JavaScript, nothing loaded from the network.

Charts use `matplotlib.figure.Figure` directly rather than pyplot: no global figure registry (nothing to close,
thread-safe) and no GUI backend is ever chosen, so it runs on a headless machine.
"""
from __future__ import annotations

import html
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from common.backtest.metrics import daily_equity

PORTFOLIO = "portfolio"
MAX_TRADES_SHOWN = 500
SCORE_EDGES = (50, 60, 70, 80, 90, 100)
DPI = 100
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
CHARTS = (("equity.png", "Equity curve"), ("drawdown.png", "Portfolio drawdown"),
          ("monthly_returns.png", "Monthly returns of the portfolio"), ("r_multiples.png", "R-multiple distribution"),
          ("win_rate_by_score.png", "Realised win rate per score bucket"))

# (column, header, how to show it): fractions are shown as %, *_pct columns already are %.
METRIC_COLUMNS = (
    ("trades", "Trades", "int"), ("total_return_pct", "Return %", "pct"), ("cagr", "CAGR %", "fraction"),
    ("sharpe", "Sharpe", "ratio"), ("sortino", "Sortino", "ratio"), ("calmar", "Calmar", "ratio"),
    ("max_drawdown_pct", "Max DD %", "pct"), ("max_drawdown_duration_days", "Max DD days", "1dp"),
    ("win_rate", "Win rate %", "fraction"), ("profit_factor", "Profit factor", "ratio"),
    ("expectancy", "Expectancy", "money"), ("avg_r", "Avg R", "ratio"), ("avg_hold_minutes", "Avg hold min", "1dp"),
    ("exposure_pct", "Exposure %", "pct"), ("final_equity", "Final equity", "amount"),
)
# Gains and losses: coloured green or red in the tables.
SIGNED_COLUMNS = {"total_return_pct", "cagr", "expectancy", "avg_r", "pnl", "r_multiple"}
TRADE_COLUMNS = (
    ("entry_time_ms", "Entry (UTC)", "time"), ("exit_time_ms", "Exit (UTC)", "time"), ("symbol", "Symbol", "text"),
    ("interval", "Interval", "text"), ("strategy", "Strategy", "text"), ("direction", "Direction", "text"),
    ("score", "Score", "1dp"), ("entry_price", "Entry", "price"), ("exit_price", "Exit", "price"),
    ("exit_reason", "Exit reason", "text"), ("tp1_hit", "TP1", "text"), ("pnl", "Net P&L", "money"),
    ("r_multiple", "R", "ratio"), ("hold_minutes", "Hold min", "1dp"),
)


def write_report(out_dir: str | Path, results: pd.DataFrame, trades: pd.DataFrame, equity: pd.DataFrame,
                 title: str | None = None) -> Path:
    """Writes out_dir/index.html and its charts for one run (titled "Backtest <run id>" unless
    given a title); returns the index.html path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves = equity_curves(equity)
    portfolio = curves.get(PORTFOLIO, pd.Series(dtype=float))
    _save(_equity_chart(curves), out / "equity.png")
    _save(_drawdown_chart(portfolio), out / "drawdown.png")
    _save(_monthly_chart(monthly_returns(portfolio)), out / "monthly_returns.png")
    _save(_r_multiple_chart(trades), out / "r_multiples.png")
    _save(_win_rate_chart(win_rate_by_score(trades)), out / "win_rate_by_score.png")
    index = out / "index.html"
    index.write_text(_page(results, trades, equity, title), encoding="utf-8")
    return index


# ---- pure helpers -------------------------------------------------------------------------------------------------

def as_float(value) -> float:
    """Decimal, int, float, None, NaN, pd.NA -> float (NaN when missing)."""
    if value is None or value is pd.NA:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def equity_curves(equity: pd.DataFrame) -> dict[str, pd.Series]:
    """gold.backtest_equity rows -> per scope, the equity as floats indexed by epoch ms (sorted)."""
    if equity is None or equity.empty:
        return {}
    curves = {}
    for scope, rows in equity.groupby("scope", sort=True):
        values = pd.Series([as_float(v) for v in rows["equity"]], index=rows["ts_ms"].astype("int64").to_numpy())
        curves[str(scope)] = values.dropna().sort_index()
    return {scope: curve for scope, curve in curves.items() if len(curve)}


def drawdown_pct(curve: pd.Series) -> pd.Series:
    """% below the running peak at every point of the curve (0 at a new high)."""
    return 100.0 * (curve / curve.cummax() - 1)


def monthly_returns(curve: pd.Series) -> pd.DataFrame:
    """curve: equity indexed by epoch ms -> % return of each calendar month (UTC), years as rows, months 1-12 as
    columns (NaN outside the curve). A month's return is its last daily equity over the previous month's; the
    first month's base is the curve's first point (the initial capital), not its first day's close, so a trade
    closing on the first day still counts."""
    columns = pd.Index(range(1, 13), name="month")
    if curve is None or curve.empty:
        return pd.DataFrame(columns=columns, dtype=float).rename_axis(index="year")
    by_day = daily_equity(curve.astype(float))
    month_end = by_day.resample("ME").last()
    base = month_end.shift(1)
    base.iloc[0] = float(curve.sort_index().iloc[0])
    returns = 100.0 * (month_end / base - 1)
    frame = pd.DataFrame({"year": returns.index.year, "month": returns.index.month, "pct": returns.to_numpy()})
    return frame.pivot(index="year", columns="month", values="pct").reindex(columns=columns)


def win_rate_by_score(trades: pd.DataFrame, edges: tuple[int, ...] = SCORE_EDGES) -> pd.DataFrame:
    """Trades per score bucket [low, high) (the last one includes its top): bucket label, trades, wins (net P&L
    > 0, as the metrics count them) and win_rate (a fraction, NaN for an empty bucket). A "<low" bucket is added
    only when some trades score below the first edge, so none vanish silently."""
    labels = [f"{low}-{high}" for low, high in zip(edges[:-1], edges[1:])]
    if trades is None or trades.empty:
        scores, wins = pd.Series(dtype=float), pd.Series(dtype=bool)
    else:
        scores = pd.Series([as_float(s) for s in trades["score"]])
        wins = pd.Series([as_float(p) > 0 for p in trades["pnl"]])
        known = scores.notna()
        scores, wins = scores[known], wins[known]
    # The top edge belongs to the last bucket (a score of exactly 100).
    position = np.searchsorted(np.asarray(edges[1:-1], dtype=float), scores.to_numpy(), side="right")
    rows = []
    below = scores < edges[0]
    if below.any():
        rows.append((f"<{edges[0]}", int(below.sum()), int(wins[below].sum())))
    for index, label in enumerate(labels):
        inside = (~below) & (scores <= edges[-1]) & (position == index)
        rows.append((label, int(inside.sum()), int(wins[inside].sum())))
    above = scores > edges[-1]
    if above.any():
        rows.append((f">{edges[-1]}", int(above.sum()), int(wins[above].sum())))
    frame = pd.DataFrame(rows, columns=["bucket", "trades", "wins"])
    frame["win_rate"] = [w / n if n else math.nan for w, n in zip(frame.wins, frame.trades)]
    return frame


# ---- charts -------------------------------------------------------------------------------------------------------

def _figure(width: float = 10, height: float = 4.5) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure, figure.add_subplot()


def _save(figure: Figure, path: Path) -> None:
    figure.savefig(path, dpi=DPI)


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=16, color="#666666", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _times(index) -> np.ndarray:
    # Naive UTC datetime64: matplotlib plots it natively, without pandas' converters.
    return pd.to_datetime(np.asarray(index, dtype="int64"), unit="ms").to_numpy()


def _date_axis(ax: Axes) -> None:
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _equity_chart(curves: dict[str, pd.Series]) -> Figure:
    figure, ax = _figure()
    ax.set_title("Equity curve")
    if not curves:
        _no_data(ax, "no equity data")
        return figure
    combinations = [scope for scope in curves if scope != PORTFOLIO]
    # With many combinations a legend entry each would hide the chart: then only the portfolio is named.
    name_each = len(combinations) <= 10
    for scope in combinations:
        curve = curves[scope]
        ax.plot(_times(curve.index), curve.to_numpy(), linewidth=0.8, alpha=0.6, drawstyle="steps-post",
                marker="o" if len(curve) == 1 else None, label=scope if name_each else None)
    if PORTFOLIO in curves:
        curve = curves[PORTFOLIO]
        ax.plot(_times(curve.index), curve.to_numpy(), linewidth=2.2, color="black", drawstyle="steps-post",
                marker="o" if len(curve) == 1 else None, label=PORTFOLIO)
    ax.set_ylabel("equity")
    ax.grid(alpha=0.3)
    _date_axis(ax)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    return figure


def _drawdown_chart(curve: pd.Series) -> Figure:
    figure, ax = _figure(10, 3.5)
    if curve.empty:
        ax.set_title("Portfolio drawdown (% below peak)")
        _no_data(ax, "no equity data")
        return figure
    underwater = drawdown_pct(curve)
    ax.set_title(f"Portfolio drawdown (% below peak; deepest {underwater.min():.1f} %)")
    times = _times(underwater.index)
    ax.fill_between(times, underwater.to_numpy(), 0, step="post", color="#d62728", alpha=0.35)
    ax.plot(times, underwater.to_numpy(), color="#d62728", linewidth=1, drawstyle="steps-post",
            marker="o" if len(curve) == 1 else None)
    deepest = float(underwater.min())
    ax.set_ylim(min(deepest * 1.1, -1.0), 0.5)
    ax.set_ylabel("% from peak")
    ax.grid(alpha=0.3)
    _date_axis(ax)
    return figure


def _monthly_chart(table: pd.DataFrame) -> Figure:
    figure, ax = _figure(10, 1.6 + 0.5 * max(len(table), 1))
    ax.set_title("Monthly returns of the portfolio (%)")
    if table.empty:
        _no_data(ax, "no equity data")
        return figure
    values = table.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    # Symmetric colour scale: 0 % is the neutral colour, gains green, losses red.
    limit = max(float(np.abs(finite).max()) if finite.size else 0.0, 1.0)
    ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    for row, col in zip(*np.nonzero(np.isfinite(values))):
        value = values[row, col]
        # The colour map's ends are dark: white text stays readable there.
        colour = "white" if abs(value) > 0.7 * limit else "black"
        ax.text(col, row, f"{value:+.1f}", ha="center", va="center", fontsize=9, color=colour)
    ax.set_xticks(range(12), MONTHS)
    ax.set_yticks(range(len(table)), [str(year) for year in table.index])
    ax.tick_params(length=0)
    return figure


def _r_multiple_chart(trades: pd.DataFrame) -> Figure:
    figure, ax = _figure(8, 4)
    ax.set_title("R-multiple distribution")
    r = pd.Series([as_float(v) for v in trades["r_multiple"]], dtype=float).dropna() \
        if trades is not None and len(trades) else pd.Series(dtype=float)
    if r.empty:
        _no_data(ax, "no trades")
        return figure
    ax.hist(r.to_numpy(), bins=min(30, max(5, len(r) // 2)), color="#1f77b4", edgecolor="white")
    mean = float(r.mean())
    ax.axvline(mean, color="black", linestyle="--", linewidth=1.5, label=f"mean {mean:+.2f} R (n={len(r)})")
    ax.axvline(0, color="#999999", linewidth=0.8)
    ax.set_xlabel("R multiple")
    ax.set_ylabel("trades")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    return figure


def _win_rate_chart(buckets: pd.DataFrame) -> Figure:
    figure, ax = _figure(8, 4)
    ax.set_title("Realised win rate per score bucket")
    if int(buckets.trades.sum()) == 0:
        _no_data(ax, "no trades")
        return figure
    rates = (100.0 * buckets.win_rate.fillna(0.0)).to_numpy()
    positions = np.arange(len(buckets))
    ax.bar(positions, rates, color="#2ca02c", alpha=0.8)
    for x, rate, n in zip(positions, rates, buckets.trades):
        label = f"{rate:.0f}%\nn={n}" if n else "n=0"
        ax.text(x, rate + 2, label, ha="center", va="bottom", fontsize=9)
    ax.set_xticks(positions, list(buckets.bucket))
    ax.set_ylim(0, 119)  # room above a 100 % bar for its label
    ax.set_xlabel("score")
    ax.set_ylabel("win rate %")
    ax.grid(alpha=0.3, axis="y")
    return figure


# ---- HTML ---------------------------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; } td.text { text-align: left; }
tr.portfolio td { font-weight: bold; background: #fafae8; }
td.neg { color: #b00; } td.pos { color: #070; }
pre { background: #f6f6f6; padding: 0.7em; font-size: 0.8em; overflow-x: auto; }
img { display: block; max-width: 100%; margin: 0.5em 0 1.5em; }
"""


def _format(value, kind: str) -> str:
    if kind == "text":
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else "no"
        return "" if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) else str(value)
    if kind == "time":
        number = as_float(value)
        return "–" if math.isnan(number) else _utc(int(number))
    number = as_float(value)
    if math.isnan(number):
        return "–"
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if kind == "int":
        return f"{int(number):d}"
    if kind == "fraction":
        return f"{100 * number:.2f}"
    if kind == "price":
        return f"{number:.8g}"
    if kind == "1dp":
        return f"{number:.1f}"
    return f"{number:.2f}"  # pct, ratio, money, amount


def _utc(ms: int, with_time: bool = True) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def _cell(value, kind: str, name: str = "") -> str:
    text = _format(value, kind)
    css = "text" if kind in ("text", "time") else ""
    number = as_float(value) if name in SIGNED_COLUMNS else math.nan
    if number < 0:
        css = "neg"
    elif number > 0:
        css = "pos"
    return f'<td class="{css}">{html.escape(text)}</td>' if css else f"<td>{html.escape(text)}</td>"


def _table(rows: pd.DataFrame, columns, first: tuple[str, str] | None = None) -> str:
    headers = ([first[1]] if first else []) + [header for _, header, _ in columns]
    lines = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>"]
    for row in rows.to_dict("records"):
        cells = [_cell(row.get(first[0]), "text")] if first else []
        cells += [_cell(row.get(name), kind, name) for name, _, kind in columns]
        css = ' class="portfolio"' if first and row.get(first[0]) == PORTFOLIO else ""
        lines.append(f"<tr{css}>" + "".join(cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _first(frame: pd.DataFrame, column: str):
    if frame is None or frame.empty or column not in frame:
        return None
    values = frame[column].dropna()
    return values.iloc[0] if len(values) else None


def _header(results: pd.DataFrame, trades: pd.DataFrame, equity: pd.DataFrame, title: str | None) -> list[str]:
    ordered = _scopes_in_order(results)
    run_id = _first(ordered, "run_id") or _first(equity, "run_id") or _first(trades, "run_id") or "unknown run"
    start_ms, end_ms = _first(ordered, "start_ms"), _first(ordered, "end_ms")
    if start_ms is None and equity is not None and len(equity):
        start_ms, end_ms = equity.ts_ms.min(), equity.ts_ms.max()
    period = f"{_utc(int(start_ms), False)} to {_utc(int(end_ms), False)}" if start_ms is not None else "unknown"
    version = _first(ordered, "data_version")
    facts = [("Data version", "unknown" if version is None else str(version)), ("Period (UTC)", period),
             ("Exchange", str(_first(ordered, "exchange") or "unknown")),
             ("Run at (UTC)", str(_first(ordered, "run_timestamp") or "unknown"))]
    config = _first(ordered, "config_json")
    try:  # pretty-printed when it is JSON, as stored otherwise
        config_text = json.dumps(json.loads(config), indent=2, sort_keys=True) if config else "(none)"
    except (TypeError, ValueError):
        config_text = str(config)
    title = title or f"Backtest {run_id}"
    return [f"<title>{html.escape(title)}</title>", "</head><body>", f"<h1>{html.escape(title)}</h1>", "<p>",
            "<br>\n".join(f"<b>{html.escape(k)}:</b> {html.escape(v)}" for k, v in facts), "</p>",
            "<details open><summary>Configuration</summary>", f"<pre>{html.escape(config_text)}</pre>", "</details>"]


def _scopes_in_order(results: pd.DataFrame) -> pd.DataFrame:
    """The portfolio first, then the combinations by name."""
    if results is None or results.empty:
        return pd.DataFrame(columns=["scope"])
    is_portfolio = results["scope"] == PORTFOLIO
    return pd.concat([results[is_portfolio], results[~is_portfolio].sort_values("scope", kind="stable")])


def _trades_section(trades: pd.DataFrame) -> list[str]:
    if trades is None or trades.empty:
        return ["<p>No trades.</p>"]
    ordered = trades.sort_values(["exit_time_ms", "entry_time_ms"], kind="stable")
    note = f"All {len(ordered)} trades, in the order they closed."
    if len(ordered) > MAX_TRADES_SHOWN:
        ordered = ordered.tail(MAX_TRADES_SHOWN)
        note = (f"The last {MAX_TRADES_SHOWN} of {len(trades)} trades (by exit time); "
                "all of them are in gold.backtest_trades.")
    return [f"<p>{html.escape(note)}</p>", _table(ordered, TRADE_COLUMNS)]


def _page(results: pd.DataFrame, trades: pd.DataFrame, equity: pd.DataFrame, title: str | None = None) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<style>{CSS}</style>"]
    parts += _header(results, trades, equity, title)
    parts.append("<h2>Metrics</h2>")
    ordered = _scopes_in_order(results)
    parts.append(_table(ordered, METRIC_COLUMNS, first=("scope", "Scope")) if len(ordered) else "<p>No results.</p>")
    parts.append("<h2>Charts</h2>")
    for file_name, caption in CHARTS:
        parts.append(f'<img src="{file_name}" alt="{html.escape(caption)}">')
    parts.append("<h2>Trades</h2>")
    parts += _trades_section(trades)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
