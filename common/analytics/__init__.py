"""The analytics maths (structure, zones, volume profile, confluence, sentiment), pure over pandas.
The stream (streaming/analytics.py) and the backtester call the same functions."""
