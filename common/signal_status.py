"""The life of a signal: an enum and the only moves it may make.

pending   -> confirmed | watchlist | rejected | expired     (the scorer's first look)
watchlist -> confirmed | rejected | expired                 (scored again on later runs)
confirmed -> executed | expired | cancelled                 (the execution engine)
rejected, expired, executed, cancelled: final.

Every move is checked here and written to trading.audit_log with its time and reason; an
illegal one is a bug and raises.
"""
from __future__ import annotations

from enum import Enum


class SignalStatus(str, Enum):
    PENDING = "pending"
    WATCHLIST = "watchlist"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    EXECUTED = "executed"
    CANCELLED = "cancelled"


ALLOWED = {
    SignalStatus.PENDING: {SignalStatus.CONFIRMED, SignalStatus.WATCHLIST, SignalStatus.REJECTED,
                           SignalStatus.EXPIRED},
    SignalStatus.WATCHLIST: {SignalStatus.CONFIRMED, SignalStatus.REJECTED, SignalStatus.EXPIRED},
    SignalStatus.CONFIRMED: {SignalStatus.EXECUTED, SignalStatus.EXPIRED, SignalStatus.CANCELLED},
}
OPEN_FOR_SCORING = (SignalStatus.PENDING.value, SignalStatus.WATCHLIST.value)


class IllegalTransition(ValueError):
    pass


def check_transition(signal_id: str, from_status: str, to_status: str) -> None:
    """Raise unless from -> to is a legal move (staying put is not a move: callers skip it)."""
    source, target = SignalStatus(from_status), SignalStatus(to_status)
    if target not in ALLOWED.get(source, set()):
        raise IllegalTransition(f"signal {signal_id}: {source.value} -> {target.value} is not allowed")
