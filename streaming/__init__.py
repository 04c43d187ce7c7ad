"""The streaming app: producers and replay into Kafka, the queries from bronze to signals, the scheduler
of the trading stages. Imports common/, never jobs/."""
