"""The engine's data checks: no new entry on stale or holed 1m data."""
from decimal import Decimal as D

from common.trade.risk import notional_at_work, stale_data

M = 60_000
NOW = 1_800_000_000_000 // M * M + 20_000  # 20 s into a minute


def minutes(first, last):
    return range(NOW // M * M + first * M, NOW // M * M + last * M + 1, M)


def test_fresh_and_whole_data_is_ground_for_an_entry():
    assert stale_data(minutes(-60, -1), NOW, 180_000, 60 * M) is None


def test_data_older_than_the_limit_is_refused():
    reason = stale_data(minutes(-60, -5), NOW, 180_000, 60 * M)
    assert reason.startswith("stale data") and "data_max_age_seconds 180" in reason


def test_a_missing_minute_in_the_window_is_refused_one_before_it_is_not():
    opens = [t for t in minutes(-60, -1) if t != NOW // M * M - 30 * M]
    assert stale_data(opens, NOW, 180_000, 60 * M).startswith("gap in the data: 1 1m klines missing")
    assert stale_data(opens, NOW, 180_000, 20 * M) is None


def test_no_data_at_all_is_refused():
    assert stale_data([], NOW, 180_000, 60 * M) == "no 1m kline in the last 60 minutes"


def test_notional_at_work_counts_positions_and_resting_entries():
    assert notional_at_work([(D(2), D(100))], [(D(1), D(50)), (D("0.5"), D(10))]) == D(255)
