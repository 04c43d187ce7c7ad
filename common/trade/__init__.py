"""The domain core: orders and client ids, sizing, a trade's lifecycle, its protective orders, risk checks.
Pure functions over plain values; imports nothing of ours outside this package."""
