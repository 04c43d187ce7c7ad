"""The trading stages: the scorer, the execution engine, the position manager and settling an
account, over their store (trading.orders and the lake's trading tables). Below jobs/ and streaming/."""
