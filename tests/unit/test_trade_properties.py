"""Properties of sizing and protection over generated markets and plans (hypothesis): whatever
the prices, steps and caps, an accepted size is finite, on the market's steps, above its
minimums and within every cap; a stop is never tighter than planned and always on the losing
side; an open trade's wanted orders cover exactly what is open, the stop all of it."""
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from common.trade.lifecycle import TradeState, apply_entry_fill, apply_exit_fill, new_trade
from common.trade.lifecycle import Costs
from common.trade.protection import desired_orders
from common.trade.sizing import MarketRules, position_size, round_stop

STEPS = st.sampled_from([D("0.001"), D("0.01"), D("0.1"), D(1), D(10)])
PRICE_STEPS = st.sampled_from([D("0.0001"), D("0.01"), D("0.1"), D("0.5")])
PRICES = st.decimals(min_value=D("0.5"), max_value=D(100_000), places=4, allow_nan=False, allow_infinity=False)
MONEY = st.decimals(min_value=D(1), max_value=D(10_000_000), places=2, allow_nan=False, allow_infinity=False)
COSTS = Costs(D("0.02"), D("0.05"), D(2))


@st.composite
def plans(draw):
    entry = draw(PRICES)
    distance_pct = draw(st.decimals(min_value=D("0.05"), max_value=D(30), places=2))
    direction = draw(st.sampled_from(["long", "short"]))
    stop = entry * (1 - distance_pct / 100) if direction == "long" else entry * (1 + distance_pct / 100)
    return direction, entry, stop


@settings(max_examples=600, deadline=None)
@given(plans(), MONEY, MONEY, st.decimals(min_value=D("0.1"), max_value=D(5), places=2),
       STEPS, st.decimals(min_value=D(1), max_value=D(125), places=0),
       st.decimals(min_value=D(10), max_value=D(1000), places=0), st.decimals(min_value=D(0), max_value=D(5_000_000),
                                                                              places=2))
def test_an_accepted_size_is_on_the_steps_above_the_minimums_and_within_every_cap(
        plan, free, equity, risk_pct, amount_step, leverage, exposure_pct, open_notional):
    direction, entry, stop = plan
    rules = MarketRules(amount_step=amount_step, price_step=D("0.0001"), min_amount=amount_step, min_notional=D(5))
    size = position_size(free, risk_pct, entry, stop, rules, leverage, exposure_pct, open_notional,
                         direction=direction, exposure_equity=equity)
    if size.refusal is not None:
        assert size.amount == 0
        return
    assert size.amount.is_finite() and size.amount > 0
    assert size.amount % amount_step == 0
    assert size.amount >= rules.min_amount and size.notional >= rules.min_notional
    assert size.risk_amount <= free * risk_pct / 100 * D("1.000001")  # never more than the risk budget
    assert size.notional <= free * leverage * D("1.000001")
    assert open_notional + size.notional <= equity * exposure_pct / 100 * D("1.000001")


@settings(max_examples=300, deadline=None)
@given(plans(), MONEY, st.sampled_from(["NaN", "Infinity", "-Infinity", "0", "-1"]))
def test_a_non_finite_or_non_positive_price_is_always_refused(plan, free, bad):
    direction, entry, stop = plan
    rules = MarketRules(D("0.001"), D("0.01"), D("0.001"), D(5))
    for entry_, stop_ in ((D(bad), stop), (entry, D(bad))):
        size = position_size(free, D(1), entry_, stop_, rules, D(3), D(300), direction=direction)
        assert size.amount == 0 and size.refusal is not None


@settings(max_examples=300, deadline=None)
@given(plans(), MONEY)
def test_a_stop_on_the_wrong_side_is_always_refused(plan, free):
    direction, entry, stop = plan
    other = "short" if direction == "long" else "long"
    size = position_size(free, D(1), entry, stop, MarketRules(D("0.001"), D("0.01")), D(3), D(300), direction=other)
    assert size.amount == 0 and "wrong side" in size.refusal


@settings(max_examples=600, deadline=None)
@given(plans(), PRICE_STEPS)
def test_a_rounded_stop_is_never_tighter_and_on_the_price_step(plan, price_step):
    direction, entry, stop = plan
    rounded = round_stop(stop, direction, MarketRules(D("0.001"), price_step))
    assert rounded % price_step == 0
    assert (rounded <= stop) if direction == "long" else (rounded >= stop)


@settings(max_examples=400, deadline=None)
@given(plans(), st.integers(min_value=1, max_value=5000), st.integers(min_value=1, max_value=100),
       st.sampled_from([D(50), D(30), D(100)]), st.booleans())
def test_an_open_trades_orders_cover_what_is_open_and_the_stop_all_of_it(plan, units, filled_pct, tp1_pct, tp1_hit):
    direction, entry, stop = plan
    rules = MarketRules(D("0.001"), D("0.0001"), D("0.001"))
    amount = D(units) * D("0.001")
    filled = max(D("0.001"), (amount * filled_pct / 100).quantize(D("0.001")))
    tp1, tp2 = (entry * D("1.02"), entry * D("1.04")) if direction == "long" else (entry * D("0.98"), entry * D("0.96"))
    trade = apply_entry_fill(new_trade("t", direction, entry, stop, tp1, tp2, amount), entry, filled, D(0), 1, rules,
                             tp1_pct)
    if tp1_hit and trade.tp2_amount > 0:
        trade = apply_exit_fill(trade, "tp1", tp1, trade.tp1_amount, D(0), 2, COSTS, rules, True)
    wanted = {w.leg: w for w in desired_orders(trade)}
    assert wanted["sl"].amount == trade.open_amount > 0
    assert all(w.side == trade.exit_side for w in wanted.values())
    assert sum(w.amount for leg, w in wanted.items() if leg != "sl") == trade.open_amount
    stop_price = wanted["sl"].stop_price
    if trade.state == TradeState.OPEN:
        assert (stop_price < entry) if direction == "long" else (stop_price > entry)  # on the losing side
    else:  # after TP1: at breakeven or better, never beyond TP2
        assert (entry <= stop_price < tp2) if direction == "long" else (tp2 < stop_price <= entry)
