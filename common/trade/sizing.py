"""Money maths of one trade, in decimals: rounding to the market's steps, position size from
the risk budget and its caps, fees, the breakeven stop, P&L and the R multiple. Pure; shared
by the execution engine, the position manager, the paper exchange and the backtester."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

LONG, SHORT = "long", "short"
ZERO = Decimal(0)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class MarketRules:
    """A market's precision and limits, from ccxt's market data (amount and price steps as
    decimals: 0.001, 0.1)."""
    amount_step: Decimal
    price_step: Decimal
    min_amount: Decimal = ZERO
    min_notional: Decimal = ZERO


def to_step(value: Decimal, step: Decimal, rounding=ROUND_HALF_EVEN) -> Decimal:
    """`value` as a whole number of `step`s (ROUND_DOWN for amounts: never more than allowed)."""
    return (value / step).to_integral_value(rounding=rounding) * step


def round_price(price: Decimal, rules: MarketRules) -> Decimal:
    return to_step(price, rules.price_step)


def round_stop(stop: Decimal, direction: str, rules: MarketRules) -> Decimal:
    """A stop rounds away from the position (a long's stop down): never tighter than planned."""
    return to_step(stop, rules.price_step, ROUND_FLOOR if direction == LONG else ROUND_CEILING)


@dataclass(frozen=True)
class SizeDecision:
    amount: Decimal  # 0 when refused
    notional: Decimal
    risk_amount: Decimal  # what the stop would lose, before fees
    capped_by: str | None  # "leverage" | "exposure" when a cap cut the risk-based size
    refusal: str | None  # why no order, or None


def position_size(equity: Decimal, risk_per_trade_pct: Decimal, entry: Decimal, stop: Decimal, rules: MarketRules,
                  max_leverage: Decimal, max_total_exposure_pct: Decimal,
                  open_notional: Decimal = ZERO, direction: str | None = None,
                  exposure_equity: Decimal | None = None) -> SizeDecision:
    """amount = equity x risk% / |entry - stop|, then capped so the notional stays within
    equity x max_leverage and the summed open notional within exposure_equity (equity when not
    given) x max_total_exposure%, rounded down to the amount step, and refused below the
    market's minimums. `equity` is what the account can put up now: its free margin, live.
    Refused outright: a price that is not a finite positive number, and, given the direction, a
    stop on the wrong side of the entry (a long's stop above it would be a bet the other way)."""
    for name, value in (("entry", entry), ("stop", stop), ("equity", equity)):
        if not value.is_finite() or value <= 0:
            return SizeDecision(ZERO, ZERO, ZERO, None, f"the {name} {value} is not a finite positive number")
    if direction is not None and (stop >= entry if direction == LONG else stop <= entry):
        return SizeDecision(ZERO, ZERO, ZERO, None,
                            f"the stop {stop} is on the wrong side of the {direction} entry {entry}")
    distance = abs(entry - stop)
    if distance <= 0:
        return SizeDecision(ZERO, ZERO, ZERO, None, "the stop is at the entry: no risk distance to size from")
    amount = equity * risk_per_trade_pct / HUNDRED / distance
    capped_by = None
    leverage_cap = equity * max_leverage / entry
    base = equity if exposure_equity is None else exposure_equity
    exposure_cap = max(ZERO, base * max_total_exposure_pct / HUNDRED - open_notional) / entry
    if leverage_cap < amount:
        amount, capped_by = leverage_cap, "leverage"
    if exposure_cap < amount:
        amount, capped_by = exposure_cap, "exposure"
    amount = to_step(amount, rules.amount_step, ROUND_DOWN)
    notional = amount * entry
    decision = dict(amount=amount, notional=notional, risk_amount=amount * distance, capped_by=capped_by)
    too_small = amount <= 0 or amount < rules.min_amount or notional < rules.min_notional
    if too_small and capped_by == "exposure" and open_notional > 0:
        return SizeDecision(**{**decision, "amount": ZERO},
                            refusal=f"max_total_exposure_pct reached: {open_notional:.2f} of "
                                    f"{base * max_total_exposure_pct / HUNDRED:.2f} open or resting")
    if amount <= 0 or amount < rules.min_amount:
        return SizeDecision(**{**decision, "amount": ZERO},
                            refusal=f"amount {amount} below the market's minimum {rules.min_amount}")
    if notional < rules.min_notional:
        return SizeDecision(**{**decision, "amount": ZERO},
                            refusal=f"notional {notional} below the market's minimum {rules.min_notional}")
    return SizeDecision(**decision, refusal=None)


def split_exits(filled: Decimal, tp1_close_pct: Decimal, rules: MarketRules) -> tuple[Decimal, Decimal]:
    """(TP1 amount, TP2 amount) of a filled amount. When it cannot be split into two legs of at
    least the minimum amount, all of it exits at TP1."""
    tp1 = to_step(filled * tp1_close_pct / HUNDRED, rules.amount_step, ROUND_DOWN)
    tp2 = filled - tp1
    if tp1 <= 0 or tp1 < rules.min_amount or tp2 < rules.min_amount or tp2 <= 0:
        return filled, ZERO
    return tp1, tp2


def fee(price: Decimal, amount: Decimal, fee_pct: Decimal) -> Decimal:
    return price * amount * fee_pct / HUNDRED


def breakeven_stop(entry_price: Decimal, direction: str, entry_fee_pct: Decimal, exit_fee_pct: Decimal,
                   rules: MarketRules) -> Decimal:
    """The stop price at which the remainder exits without loss after both fees (rounded so as
    to cover them: up for a long, down for a short)."""
    if direction == LONG:
        price = entry_price * (HUNDRED + entry_fee_pct) / (HUNDRED - exit_fee_pct)
        return to_step(price, rules.price_step, ROUND_CEILING)
    price = entry_price * (HUNDRED - entry_fee_pct) / (HUNDRED + exit_fee_pct)
    return to_step(price, rules.price_step, ROUND_FLOOR)


def gross_pnl(direction: str, entry_price: Decimal, exit_price: Decimal, amount: Decimal) -> Decimal:
    move = exit_price - entry_price if direction == LONG else entry_price - exit_price
    return move * amount


def slipped(price: Decimal, side: str, slippage_bps: Decimal) -> Decimal:
    """A market (stop) fill's price after slippage: a sell gets less, a buy pays more."""
    factor = slippage_bps / Decimal(10_000)
    return price * (1 - factor) if side == "sell" else price * (1 + factor)


def r_multiple(net_pnl: Decimal, initial_risk: Decimal) -> float | None:
    """The net result in units of what the initial stop risked."""
    return None if initial_risk <= 0 else float(net_pnl / initial_risk)
