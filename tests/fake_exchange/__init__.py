"""A local fake of the Binance USDⓈ-M, Bybit v5 linear and OKX v5 SWAP public REST APIs for tests."""
from tests.fake_exchange.server import FAULTS, FakeExchange

__all__ = ["FAULTS", "FakeExchange"]
