"""What the deployment files promise: the compose stack publishes its unauthenticated ports
(Kafka PLAINTEXT, the Spark master's UI) on this machine's loopback only; the runtime's packages
and the tests' are apart (the image and the wheel get the runtime's only, `make setup` both);
the image runs as a user of its own, not root."""
import ast
import re

import yaml

from common.config import PROJECT_ROOT

# Test-only distributions and the module each is imported as.
TEST_ONLY_MODULES = {"pytest": "pytest", "pytest-timeout": "pytest_timeout", "chispa": "chispa",
                     "empyrical-reloaded": "empyrical", "scipy": "scipy", "Bottleneck": "bottleneck",
                     "peewee": "peewee", "hypothesis": "hypothesis", "sortedcontainers": "sortedcontainers",
                     "import-linter": "importlinter", "grimp": "grimp"}


def compose_services():
    return yaml.safe_load((PROJECT_ROOT / "docker" / "compose.yaml").read_text())["services"]


def pins(name):
    lines = (PROJECT_ROOT / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def setup_requirements():
    call = next(node for node in ast.walk(ast.parse((PROJECT_ROOT / "setup.py").read_text()))
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup")
    arguments = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords
                 if keyword.arg in ("install_requires", "extras_require")}
    return arguments["install_requires"], arguments["extras_require"]["test"]


def test_compose_publishes_kafka_and_the_spark_ui_on_the_loopback_only():
    published = {name: service.get("ports", []) for name, service in compose_services().items()}
    assert published["kafka"] and published["spark-master"]
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_runtime_and_test_requirements_are_apart():
    runtime, tests = pins("requirements.txt"), pins("requirements-test.txt")
    names = lambda lines: {line.split("==")[0] for line in lines}  # noqa: E731
    assert names(tests) == set(TEST_ONLY_MODULES)
    assert not names(runtime) & names(tests)
    assert {"pyspark", "delta-spark", "kafka-python", "ccxt", "pandas"} <= names(runtime)
    install_requires, test_extra = setup_requirements()
    assert set(install_requires) == set(runtime) and set(test_extra) == set(tests)


def test_the_app_imports_no_test_only_package():
    for folder in ("common", "jobs", "streaming"):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                           [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                for module in modules:
                    assert module.split(".")[0] not in TEST_ONLY_MODULES.values(), f"{path} imports {module}"


def test_make_setup_installs_both_and_is_redone_when_either_changes():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    target = re.search(r"^\$\(VENV\)/\.installed:(.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert {"requirements.txt", "requirements-test.txt"} <= set(target.group(1).split())
    assert "-r requirements.txt -r requirements-test.txt" in target.group(2)


def test_the_image_installs_the_runtime_only_and_runs_as_its_own_user():
    dockerfile = (PROJECT_ROOT / "docker" / "Dockerfile").read_text().replace("\\\n", " ")  # one line per instruction
    runs = " ".join(re.findall(r"^RUN (.*)", dockerfile, re.M))
    assert "-r requirements.txt" in runs and "requirements-test" not in runs
    assert re.search(r"useradd .*--uid", runs)
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    last_user = dockerfile.rindex("\nUSER ")
    assert "\nRUN " not in dockerfile[last_user:], "everything after USER runs as that user"
    assert "chown cryptobot" in runs  # what it writes is its own
