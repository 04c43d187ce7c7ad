"""The backtester's fill loop and its portfolio: skipping the bars that reach no level changes
no trade; a taken order is the same fills resized; one account applies the engine's limits
across combinations (slots per symbol and in all, the daily loss limit, sizing on equity)."""
import json
from decimal import Decimal as D
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from common.backtest.engine import FillBars, trade_through_bars
from common.backtest.portfolio import replay_fills, run_portfolio
from common.exchange.paper import paper_market_rules
from common.trade.lifecycle import Costs, TradeState, new_trade, paper_bar, trade_result
from common.trade.sizing import round_price
from common.trading_config import default_rows, parse_trading_config

COSTS = Costs(maker_fee_pct=D("0.02"), taker_fee_pct=D("0.05"), slippage_bps=D("2"))
MINUTE = 60_000
DAY = 86_400_000


def random_bars(seed: int, count: int = 3000) -> FillBars:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, count)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.001, count))  # small gaps
    high = np.maximum(open_, close) * (1 + rng.exponential(0.002, count))
    low = np.minimum(open_, close) * (1 - rng.exponential(0.002, count))
    times = np.arange(count, dtype="int64") * MINUTE
    frame = pd.DataFrame({"open_time_ms": times, "close_time_ms": times + MINUTE - 1, "open": open_.round(2),
                          "high": high.round(2), "low": low.round(2)})
    return FillBars.from_frame(frame)


def bar_by_bar(trade, bars: FillBars, start: int):
    """The plain loop the fast one must equal: paper_bar on every bar."""
    for n in range(start, len(bars)):
        trade = paper_bar(trade, D(str(bars.open[n])), D(str(bars.high[n])), D(str(bars.low[n])),
                          int(bars.close_time_ms[n]), COSTS, paper_market_rules(trade.entry_price), D(50), True, 30)
        if trade.state in (TradeState.CLOSED, TradeState.CANCELLED):
            return trade
    return trade


@pytest.mark.parametrize("seed", range(4))
def test_skipping_quiet_bars_changes_no_trade(seed):
    bars = random_bars(seed)
    rng = np.random.default_rng(100 + seed)
    compared = 0
    for start in rng.integers(0, len(bars) - 200, 40):
        close = D(str(bars.open[start]))
        long = bool(rng.integers(0, 2))
        sign = 1 if long else -1
        risk = close * D("0.006")
        rules = paper_market_rules(close)
        entry = round_price(close - sign * close * D("0.001"), rules)
        levels = [round_price(entry + k * sign * risk, rules) for k in (-1, 1, 2)]
        trade = new_trade(f"t{start}", "long" if long else "short", entry, *levels, D("1.5"))
        fast, _ = trade_through_bars(trade, bars, int(start), COSTS, rules, D(50), True, 30)
        assert fast == bar_by_bar(trade, bars, int(start))
        compared += fast.state == TradeState.CLOSED
    assert compared >= 10  # most of them traded to the end, through TP1 and stops


def closed_attempt(signal_id, symbol, placed_ms, entry_ms, exit_ms, exit_leg="sl", exit_price="98"):
    fills = [["entry", "100", entry_ms], [exit_leg, exit_price, exit_ms]]
    return {"signal_id": signal_id, "symbol": symbol, "placed_ms": placed_ms, "ended_ms": exit_ms,
            "state": "closed", "direction": "long", "reference_price": "100", "entry_price": "100", "sl_price": "98",
            "tp1_price": "104", "tp2_price": "108", "amount": "1", "fills": json.dumps(fills)}


def trading(**overrides):
    rows = {r["param_name"]: r["param_value"] for r in default_rows()}
    rows.update({k: str(v) for k, v in overrides.items()})
    return parse_trading_config(rows)


def test_replayed_fills_at_the_same_amount_are_the_same_trade_and_scale_with_it():
    bars = random_bars(7)
    trade = new_trade("t", "long", D(str(bars.low[50])), D(str(round(bars.low[50] * 0.994, 2))),
                      D(str(round(bars.low[50] * 1.006, 2))), D(str(round(bars.low[50] * 1.012, 2))), D("2.000"))
    done, ended = trade_through_bars(trade, bars, 50, COSTS, paper_market_rules(trade.entry_price), D(50), True, 30)
    assert done.state == TradeState.CLOSED
    attempt = SimpleNamespace(signal_id="t", direction="long", reference_price=str(trade.entry_price),
                              entry_price=str(trade.entry_price), sl_price=str(trade.sl_price),
                              tp1_price=str(trade.tp1_price), tp2_price=str(trade.tp2_price),
                              fills=json.dumps([[f.leg, str(f.price), f.time_ms] for f in done.fills]))
    assert replay_fills(attempt, D("2.000"), COSTS, D(50), True) == done
    doubled = trade_result(replay_fills(attempt, D("4.000"), COSTS, D(50), True))
    assert doubled.net_pnl == 2 * trade_result(done).net_pnl


def test_one_account_one_position_per_symbol_and_sizing_on_equity():
    attempts = pd.DataFrame([
        closed_attempt("a", "BTCUSDT", 0, MINUTE, 10 * MINUTE),  # stop: -2 per unit + fees
        closed_attempt("b", "BTCUSDT", 5 * MINUTE, 6 * MINUTE, 20 * MINUTE),  # BTC is busy: skipped
        closed_attempt("c", "ETHUSDT", 5 * MINUTE, 6 * MINUTE, 30 * MINUTE, "tp2", "108"),  # taken meanwhile
        closed_attempt("d", "BTCUSDT", 10 * MINUTE, 11 * MINUTE, 40 * MINUTE),  # "a" ends at this instant: busy
        closed_attempt("e", "BTCUSDT", 10 * MINUTE + 1, 12 * MINUTE, 50 * MINUTE, "tp2", "108"),
    ])
    config = trading(risk_per_trade_pct=1.0, max_leverage=100, max_total_exposure_pct=10000, daily_loss_limit_pct=50)
    book = run_portfolio(attempts, config, D(10_000))
    assert list(book.trades.signal_id) == ["a", "c", "e"]
    assert book.skipped == {"a position or entry on the symbol already": 2}
    a = book.trades.set_index("signal_id").loc["a"]
    assert a.quantity == D(50)  # 1 % of 10,000 over a 2.00 stop distance
    # "e" is sized on the equity after "a" closed: 10,000 + a's net P&L ("c" is still open).
    equity_then = D(10_000) + a.net_pnl
    expected = (equity_then / 100 / 2).quantize(D("0.01"), "ROUND_DOWN")  # the amount step at 100 is 0.01
    assert book.trades.set_index("signal_id").loc["e"].quantity == expected
    assert book.equity.iloc[-1] == pytest.approx(float(D(10_000) + book.trades.net_pnl.sum()))


def test_max_open_positions_and_the_daily_loss_limit():
    attempts = pd.DataFrame([closed_attempt(f"s{n}", f"SYM{n}USDT", n, 100 + n, 1000 + n) for n in range(4)])
    book = run_portfolio(attempts, trading(max_open_positions=3, max_total_exposure_pct=10000, max_leverage=100),
                         D(10_000))
    assert len(book.trades) == 3 and book.skipped == {"max_open_positions reached": 1}
    # Two stops the same day lose ~2 % of equity: with a 1.5 % daily limit the third order is refused.
    losing = pd.DataFrame([closed_attempt("x", "AUSDT", 0, 1, 10), closed_attempt("y", "BUSDT", 20, 21, 30),
                           closed_attempt("z", "CUSDT", 40, 41, 50),
                           closed_attempt("w", "DUSDT", DAY, DAY + 1, DAY + 9)])
    book = run_portfolio(losing, trading(daily_loss_limit_pct=1.5, max_total_exposure_pct=10000, max_leverage=100),
                         D(10_000))
    assert list(book.trades.signal_id) == ["x", "y", "w"]  # a new day: trading again
    assert book.skipped == {"daily loss limit": 1}


def test_an_entry_never_filled_holds_its_slot_until_it_is_cancelled():
    cancelled = {**closed_attempt("p", "BTCUSDT", 0, 0, 12 * MINUTE), "state": "cancelled", "fills": "[]"}
    attempts = pd.DataFrame([cancelled, closed_attempt("q", "BTCUSDT", 5 * MINUTE, 6 * MINUTE, 20 * MINUTE),
                             closed_attempt("r", "BTCUSDT", 13 * MINUTE, 14 * MINUTE, 30 * MINUTE)])
    book = run_portfolio(attempts, trading(max_total_exposure_pct=10000, max_leverage=100), D(10_000))
    assert list(book.trades.signal_id) == ["r"]
    assert book.equity.index[0] == 0 and len(book.equity) == 2
