"""The broker's server.properties is the template with the config-dependent keys replaced."""
from common.config import PROJECT_ROOT
from jobs.kafka_broker import render_properties


def test_overrides_replace_values_and_keep_everything_else():
    template = "# comment=x\na=1\nlisteners=PLAINTEXT://127.0.0.1:9092\nb=2\n"
    rendered = render_properties(template, {"listeners": "PLAINTEXT://127.0.0.1:19092", "log.dirs": "/tmp/k"})
    assert rendered.splitlines() == ["# comment=x", "a=1", "listeners=PLAINTEXT://127.0.0.1:19092", "b=2",
                                     "log.dirs=/tmp/k"]


def test_shipped_template_never_auto_creates_topics_and_is_single_node():
    props = dict(line.split("=", 1) for line in (PROJECT_ROOT / "conf/kafka/server.properties").read_text().splitlines()
                 if line and not line.startswith("#"))
    assert props["auto.create.topics.enable"] == "false"
    assert props["process.roles"] == "broker,controller"
    assert props["offsets.topic.replication.factor"] == "1"
