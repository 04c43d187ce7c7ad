"""The backtester: the live strategy, scorer and trade rules over history, its portfolio, metrics and report.
Run by common/backtest/backtesting.py (jobs/backtesting.py, `cryptobot backtest`); imports no stream and no entry point."""
