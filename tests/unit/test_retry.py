"""Temporary exchange errors are retried with capped exponential backoff; permanent ones are not."""
import ccxt
import pytest

from common.exchange.market_data import last_closed_open_time
from common.exchange.retry import RetryPolicy, call_with_retry, is_temporary


def failing(errors, result="ok"):
    calls = []

    def action():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result
    return action, calls


@pytest.mark.parametrize("error", [ccxt.NetworkError("x"), ccxt.RequestTimeout("x"), ccxt.RateLimitExceeded("x"),
                                   ccxt.ExchangeNotAvailable("x"), ccxt.DDoSProtection("x"), ccxt.BadResponse("x")])
def test_temporary_errors(error):
    assert is_temporary(error)


@pytest.mark.parametrize("error", [ccxt.BadSymbol("x"), ccxt.AuthenticationError("x"), ccxt.BadRequest("x"),
                                   ccxt.InsufficientFunds("x"), ValueError("x")])
def test_permanent_errors(error):
    assert not is_temporary(error)


def test_backoff_doubles_up_to_the_cap_then_succeeds():
    sleeps = []
    action, calls = failing([ccxt.RequestTimeout("t")] * 5)
    assert call_with_retry(action, RetryPolicy(6, 1.0, 5.0), "test", sleep=sleeps.append) == "ok"
    assert sleeps == [1.0, 2.0, 4.0, 5.0, 5.0] and len(calls) == 6


def test_out_of_tries_reraises_the_last_temporary_error():
    action, calls = failing([ccxt.RateLimitExceeded("429")] * 3)
    with pytest.raises(ccxt.RateLimitExceeded):
        call_with_retry(action, RetryPolicy(3, 0.1, 1.0), "test", sleep=lambda s: None)
    assert len(calls) == 3


def test_permanent_error_is_raised_at_once():
    action, calls = failing([ccxt.BadSymbol("no such market")])
    with pytest.raises(ccxt.BadSymbol):
        call_with_retry(action, RetryPolicy(5, 0.1, 1.0), "test", sleep=lambda s: pytest.fail("slept"))
    assert len(calls) == 1


@pytest.mark.parametrize("now_ms, expected", [
    (3_600_000 + 60_000 + 3_000, 3_600_000),        # 01:01:03: the 01:00 minute closed 3 s ago
    (3_600_000 + 60_000 + 2_999, 3_600_000 - 60_000),  # grace not over yet: 01:00 not taken as closed
])
def test_last_closed_candle_waits_for_the_grace_period(now_ms, expected):
    assert last_closed_open_time(now_ms, 60_000, 3_000) == expected
