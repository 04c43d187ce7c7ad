"""The execution engine's risk checks as pure functions over plain values: whether the market's
data is fresh and whole enough to open a trade on, and how much notional is already at work
(open positions, resting entries, entries planned earlier in the same run)."""
from __future__ import annotations

from decimal import Decimal
from typing import Iterable

MINUTE_MS = 60_000


def stale_data(minute_opens: Iterable[int], now_ms: int, max_age_ms: int, window_ms: int) -> str | None:
    """Why a market's 1m klines are no ground for a new entry now, or None: the newest closed
    longer than max_age_ms ago, or a minute is missing within window_ms before now."""
    opens = sorted(set(minute_opens))
    if not opens:
        return f"no 1m kline in the last {window_ms // MINUTE_MS} minutes"
    newest_close = opens[-1] + MINUTE_MS
    if now_ms - newest_close > max_age_ms:
        return (f"stale data: the newest 1m kline closed {(now_ms - newest_close) // 1000} s ago, more than "
                f"data_max_age_seconds {max_age_ms // 1000}")
    first_expected = -(-(now_ms - window_ms) // MINUTE_MS) * MINUTE_MS
    present = set(opens)
    missing = [t for t in range(first_expected, opens[-1], MINUTE_MS) if t not in present]
    if missing:
        return (f"gap in the data: {len(missing)} 1m klines missing in the last {window_ms // MINUTE_MS} minutes "
                f"(first at open time {missing[0]})")
    return None


def notional_at_work(positions: Iterable[tuple[Decimal, Decimal]], resting_entries: Iterable[tuple[Decimal, Decimal]]
                     ) -> Decimal:
    """Sum of amount x price over open positions (remaining amount, entry price) and resting
    entries (unfilled amount, limit price)."""
    return sum((amount * price for amount, price in list(positions) + list(resting_entries)), Decimal(0))
