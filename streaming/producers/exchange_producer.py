"""One exchange's producer: its closed klines to klines.<exchange>, its sentiment inputs to
market.<exchange>, each (symbol, interval) and (symbol, metric) a stream with its own cursor.

A cursor is the next open time (or timestamp) to send. It starts where Kafka says the
stream stopped (streaming/producers/resume.py), else at --since, else a configured number
of bars back, and it moves only after Kafka acknowledged the page. A permanent exchange
error stops that stream, with its reason, while the others go on.

A round's records go out together (one flush for every stream the round fetched, _Outbox):
a candle's symbols close at the same moment, and sent one fetch at a time they straddled the
stream's trigger, so each stage downstream ran two micro-batches for one candle.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

from kafka import KafkaProducer

from common.config import AppConfig
from common.intervals import INTERVAL_MS
from common.exchange.market_data import FUNDING_PERIOD_MS, MARKET_METRICS, MarketDataClient, wall_clock_ms
from common.exchange.retry import is_temporary
from common.symbols import check_markets
from streaming.producers.kafka_writer import send_confirmed
from streaming.producers.messages import encode, kline_key, kline_message, market_key, market_message
from streaming.producers.resume import last_sent_times

log = logging.getLogger(__name__)
# Records held before a send, within a round: far more than a live round's new candles (one or
# two per stream), and about a page of a backfill, whose progress reaches Kafka (and its
# cursor moves) page by page rather than at the end of a long history.
OUTBOX_LIMIT = 1_000


@dataclass
class Stream:
    """One kline series (kind 'kline', name = interval) or one market metric (kind 'market')."""
    kind: str
    symbol: str
    ccxt_symbol: str
    exchange_symbol: str | None
    name: str
    next_time_ms: int | None = None
    stopped_reason: str | None = None
    sent: int = 0

    @property
    def key(self) -> str:
        return kline_key(self.symbol, self.name) if self.kind == "kline" else market_key(self.symbol, self.name)

    @property
    def label(self) -> str:
        return f"{self.symbol}|{self.name}"


class ExchangeProducer:
    def __init__(self, exchange: str, config: AppConfig, market_data: MarketDataClient, kafka: KafkaProducer,
                 since_ms: int | None = None, clock: Callable[[], int] = wall_clock_ms):
        self.exchange = exchange
        self.config = config
        self.market_data = market_data
        self.kafka = kafka
        self.since_ms = since_ms
        self.clock = clock
        self.klines_topic = config.klines_topic(exchange)
        self.market_topic = config.market_topic(exchange)
        self.streams: list[Stream] = []

    # -- start ------------------------------------------------------------------------

    def prepare(self) -> None:
        """Load markets, build the streams, and resume each where Kafka says it stopped."""
        self.market_data.load_markets()
        checks = check_markets(self.config.exchanges.symbol_map, self.exchange, list(self.config.exchanges.symbols),
                               self.market_data.markets())
        for check in checks:
            # A symbol the exchange does not list (or not actively) stops its streams only.
            names = (check.symbol, check.ccxt_symbol, check.exchange_symbol)
            for interval in self.config.exchanges.intervals:
                self.streams.append(Stream("kline", *names, interval, stopped_reason=check.problem))
            if self.config.producer.market_data:
                for metric in MARKET_METRICS:
                    if self.market_data.supports(metric):
                        self.streams.append(Stream("market", *names, metric, stopped_reason=check.problem))
        for stream in self.streams:
            if stream.stopped_reason:
                log.error("event=stream_stopped exchange=%s stream=%s reason=%s", self.exchange, stream.label,
                          stream.stopped_reason)
        self._resume()

    def _resume(self) -> None:
        kline_keys = {s.key for s in self.streams if s.kind == "kline"}
        market_keys = {s.key for s in self.streams if s.kind == "market"}
        last_klines = last_sent_times(self.config, self.klines_topic, kline_keys, "open_time") if kline_keys else {}
        last_market = last_sent_times(self.config, self.market_topic, market_keys, "ts") if market_keys else {}
        now_ms = self.clock()
        for stream in self.streams:
            if stream.kind == "kline":
                interval_ms = INTERVAL_MS[stream.name]
                if stream.key in last_klines:
                    stream.next_time_ms = last_klines[stream.key] + interval_ms
                else:
                    stream.next_time_ms = self._start_ms(now_ms, interval_ms)
            else:
                stream.next_time_ms = (last_market[stream.key] + 1 if stream.key in last_market
                                       else self._start_ms(now_ms, self._market_period_ms(stream)))
            log.info("event=stream_resumed exchange=%s stream=%s next_time_ms=%s from=%s", self.exchange,
                     stream.label, stream.next_time_ms, "kafka" if stream.key in {**last_klines, **last_market}
                     else "since" if self.since_ms is not None else "lookback")

    def _start_ms(self, now_ms: int, step_ms: int) -> int:
        if self.since_ms is not None:
            return self.since_ms
        return (now_ms // step_ms - self.config.producer.initial_lookback_bars) * step_ms

    # -- polling ----------------------------------------------------------------------

    def active_streams(self) -> list[Stream]:
        return [s for s in self.streams if s.stopped_reason is None]

    def poll_once(self) -> int:
        """One round over every active stream; returns the number of messages sent."""
        outbox = _Outbox(self.kafka, self.exchange)
        for stream in self.active_streams():
            try:
                if stream.kind == "kline":
                    self._poll_klines(stream, outbox)
                else:
                    self._poll_market(stream, outbox)
            except Exception as error:  # noqa: BLE001 - one stream's failure must not stop the others
                if is_temporary(error):
                    # Retries exhausted: what it fetched goes out, its cursor after that; the rest next round.
                    log.error("event=stream_poll_failed exchange=%s stream=%s error=%s: %s (retrying next round)",
                              self.exchange, stream.label, type(error).__name__, error)
                elif _is_exchange_error(error):
                    stream.stopped_reason = f"{type(error).__name__}: {error}"
                    log.error("event=stream_stopped exchange=%s stream=%s reason=%s", self.exchange, stream.label,
                              stream.stopped_reason)
                else:
                    raise  # Kafka or our own bug: stop the producer loudly
        outbox.send()
        return outbox.sent

    def _poll_klines(self, stream: Stream, outbox: "_Outbox") -> None:
        interval_ms = INTERVAL_MS[stream.name]
        # No request until a new candle of this interval can have closed.
        if self.clock() < stream.next_time_ms + interval_ms + self.config.producer.close_grace_ms:
            return
        # Paging goes on from the last page fetched, though its cursor moves only once Kafka has it.
        for page in self.market_data.closed_kline_pages(stream.ccxt_symbol, stream.name, stream.next_time_ms):
            produced_at = self.clock()
            records = [(stream.key, encode(kline_message(
                exchange=self.exchange, symbol=stream.symbol, exchange_symbol=stream.exchange_symbol,
                ccxt_symbol=stream.ccxt_symbol, interval=stream.name, kline=k, source=self.exchange,
                produced_at_ms=produced_at, quote_volume=k.quote_volume, trade_count=k.trade_count)))
                for k in page]
            outbox.add(self.klines_topic, stream, records, page[-1].open_time_ms + interval_ms)

    def _market_period_ms(self, stream: Stream) -> int:
        if stream.name == "funding_rate":
            return FUNDING_PERIOD_MS
        return INTERVAL_MS[self.config.producer.market_period]

    def _poll_market(self, stream: Stream, outbox: "_Outbox") -> None:
        # No request until the next point of this metric can exist.
        if self.clock() < stream.next_time_ms - 1 + self._market_period_ms(stream) + self.config.producer.close_grace_ms:
            return
        points = self.market_data.market_points(stream.ccxt_symbol, stream.name, self.config.producer.market_period,
                                                stream.next_time_ms)
        if not points:
            return
        produced_at = self.clock()
        records = [(stream.key, encode(market_message(
            exchange=self.exchange, symbol=stream.symbol, exchange_symbol=stream.exchange_symbol,
            ccxt_symbol=stream.ccxt_symbol, point=p, source=self.exchange, produced_at_ms=produced_at)))
            for p in points]
        outbox.add(self.market_topic, stream, records, points[-1].ts_ms + 1)

    def run(self, stop: threading.Event, once: bool) -> None:
        while not stop.is_set():
            self.poll_once()
            if once or not self.active_streams():
                return
            stop.wait(self.config.producer.poll_interval_seconds)


class _Outbox:
    """A round's records, sent together once fetched: one flush, so that a candle's streams reach
    Kafka at one moment. A stream's cursor moves only once Kafka has acknowledged its records.
    A backfill goes out every OUTBOX_LIMIT records, not all at the round's end."""

    def __init__(self, kafka: KafkaProducer, exchange: str):
        self.kafka, self.exchange = kafka, exchange
        self._records: dict[str, list[tuple[str, bytes]]] = {}  # topic -> records
        self._cursors: dict[int, tuple[Stream, int, int]] = {}  # id(stream) -> (stream, next time, records)
        self.sent = 0  # records Kafka acknowledged, over every send

    def add(self, topic: str, stream: Stream, records: list[tuple[str, bytes]], next_time_ms: int) -> None:
        self._records.setdefault(topic, []).extend(records)
        _, _, count = self._cursors.get(id(stream), (stream, 0, 0))
        self._cursors[id(stream)] = (stream, next_time_ms, count + len(records))
        if sum(len(r) for r in self._records.values()) >= OUTBOX_LIMIT:
            self.send()

    def send(self) -> None:
        """Send what is held and wait for Kafka's acknowledgement; then move the cursors."""
        self.sent += sum(send_confirmed(self.kafka, topic, records) for topic, records in self._records.items())
        for stream, next_time_ms, count in self._cursors.values():
            stream.next_time_ms = next_time_ms
            stream.sent += count
            log.info("event=%s_sent exchange=%s stream=%s count=%d next_time_ms=%d",
                     "klines" if stream.kind == "kline" else "market", self.exchange, stream.label, count,
                     next_time_ms)
        self._records, self._cursors = {}, {}


def _is_exchange_error(error: Exception) -> bool:
    import ccxt

    return isinstance(error, ccxt.BaseError)
