"""The library under the stream and the entry points: imports nothing from streaming/ or jobs/.
Its packages in layers: trade (domain core) < exchange (adapters) < trading (stages); the lake, config, analytics beside."""
