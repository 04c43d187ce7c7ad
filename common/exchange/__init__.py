"""The exchange adapters: the gateway protocol, the paper exchange, ccxt (Binance, Bybit, OKX).
They depend on the domain core (common/trade/), never on the trading stages."""
