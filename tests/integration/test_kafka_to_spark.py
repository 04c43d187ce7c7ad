"""The real broker from the project's jars: explicit topics only, and what kafka-python produces
(acks=all, idempotent) a Spark Kafka-source streaming query reads back, exactly."""
import json

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError

from jobs.kafka_broker import ensure_topics, list_topics


def producer(config, **extra):
    return KafkaProducer(bootstrap_servers=config.kafka.bootstrap_servers, acks="all", enable_idempotence=True,
                         **extra)


def test_broker_has_every_configured_topic(app_config, kafka_broker):
    topics = list_topics(app_config)
    assert set(app_config.topics()) <= set(topics)
    assert ensure_topics(app_config) == []  # already there: nothing to create


def test_topics_are_never_auto_created(app_config, kafka_broker):
    with producer(app_config, max_block_ms=3000) as kp:
        with pytest.raises(KafkaTimeoutError):
            kp.send("klines.no_such_exchange", key=b"BTCUSDT|1m", value=b"{}").get(timeout=10)
    assert "klines.no_such_exchange" not in list_topics(app_config)


def test_message_produced_with_kafka_python_is_read_by_a_spark_streaming_query(spark, app_config, kafka_broker,
                                                                                tmp_path):
    topic = "test.roundtrip"
    ensure_topics(app_config, [topic])
    sent = [{"schema_version": 1, "symbol": "BTCUSDT", "open_time": 1_700_000_000_000 + i * 60_000, "close": 100.0 + i}
            for i in range(25)]
    with producer(app_config) as kp:
        for message in sent:
            kp.send(topic, key=b"BTCUSDT|1m", value=json.dumps(message).encode())
        kp.flush()

    target = str(tmp_path / "roundtrip")
    query = (spark.readStream.format("kafka")
             .option("kafka.bootstrap.servers", app_config.kafka.bootstrap_servers)
             .option("subscribe", topic)
             .option("startingOffsets", "earliest")
             .load()
             .selectExpr("CAST(key AS STRING) AS key", "CAST(value AS STRING) AS value", "topic", "partition",
                         "offset")
             .writeStream.format("delta")
             .option("checkpointLocation", str(tmp_path / "checkpoint"))
             .trigger(availableNow=True)
             .start(target))
    query.awaitTermination(180)
    assert query.exception() is None

    rows = spark.read.format("delta").load(target).orderBy("offset").collect()
    assert [json.loads(r.value) for r in rows] == sent
    assert {r.key for r in rows} == {"BTCUSDT|1m"}
    assert [r.offset for r in rows] == list(range(25))
