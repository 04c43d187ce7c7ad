"""What the deployment files promise: the compose stack publishes its unauthenticated ports
(Kafka PLAINTEXT, the Spark master's UI) on this machine's loopback only."""
import yaml

from common.config import PROJECT_ROOT


def compose_services():
    return yaml.safe_load((PROJECT_ROOT / "docker" / "compose.yaml").read_text())["services"]


def test_compose_publishes_kafka_and_the_spark_ui_on_the_loopback_only():
    published = {name: service.get("ports", []) for name, service in compose_services().items()}
    assert published["kafka"] and published["spark-master"]
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
