"""Which ccxt errors are worth retrying, and the capped exponential backoff that retries them.

Temporary: the network, a timeout, a rate limit, an exchange down or in maintenance, a
garbled response. Permanent: everything else ccxt raises (a bad symbol, bad keys, a bad
request): retrying cannot fix them, so they go straight up to the caller.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import ccxt

log = logging.getLogger(__name__)
T = TypeVar("T")

# NetworkError covers RequestTimeout, ExchangeNotAvailable (and OnMaintenance),
# DDoSProtection and RateLimitExceeded. BadResponse/NullResponse are a garbled or empty body.
TEMPORARY_ERRORS: tuple[type[Exception], ...] = (ccxt.NetworkError, ccxt.BadResponse, ccxt.NullResponse)
PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    ccxt.BadSymbol, ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended, ccxt.BadRequest,
    ccxt.NotSupported,
)


def is_temporary(error: Exception) -> bool:
    return isinstance(error, TEMPORARY_ERRORS) and not isinstance(error, PERMANENT_ERRORS)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def delay_s(self, attempt: int) -> float:
        """Delay after failed attempt number `attempt` (1-based): base, 2×base, 4×base, … capped."""
        return min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))


def call_with_retry(action: Callable[[], T], policy: RetryPolicy, what: str,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `action`; retry temporary errors per `policy`; re-raise the last one when out of tries."""
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return action()
        except Exception as error:
            if not is_temporary(error) or attempt == policy.max_attempts:
                raise
            delay = policy.delay_s(attempt)
            log.warning("event=exchange_retry call=%s attempt=%d/%d delay_s=%.2f error=%s: %s",
                        what, attempt, policy.max_attempts, delay, type(error).__name__, _short(error))
            sleep(delay)
    raise AssertionError("unreachable")


def _short(error: Exception, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + "…"
