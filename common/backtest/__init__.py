"""The backtester: the live strategy, scorer and trade rules over history, its portfolio, metrics and report.
Called by jobs/backtesting.py; imports no stream and no entry point."""
