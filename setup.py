"""Packaging: `pip install -e .` for development, `python setup.py bdist_wheel` (make dist)
for --py-files on a cluster. Pinned versions live in requirements.txt (the runtime's, which
install_requires repeats) and requirements-test.txt (the tests', the `test` extra)."""
from setuptools import find_packages, setup

setup(
    name="cryptobot",
    version="0.1.0",
    description="Crypto trading bot on Spark Structured Streaming, Delta Lake and Kafka",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["common", "common.*", "streaming", "streaming.*", "jobs", "jobs.*"]),
    install_requires=[
        "pyspark==4.1.1",
        "delta-spark==4.3.1",
        "kafka-python==3.0.12",
        "ccxt==4.5.90",
        "pandas==2.3.3",
        "pyarrow==21.0.0",
        "numpy==2.3.4",
        "PyYAML==6.0.2",
        "matplotlib==3.11.2",
        "pytz==2026.6",
    ],
    extras_require={"test": ["pytest==8.4.2", "pytest-timeout==2.4.0", "chispa==0.12.0", "empyrical-reloaded==0.7.1",
                             "scipy==1.17.1", "Bottleneck==1.6.0", "peewee==3.17.3",
                             "hypothesis==6.170.27", "sortedcontainers==2.4.0", "import-linter==2.17",
                             "grimp==3.20"]},
    entry_points={"console_scripts": ["cryptobot=jobs.cli:main"]},
)
