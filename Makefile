# The front door. `make setup` installs everything (Python packages, Spark's jars, the Kafka
# broker) and is idempotent; `make test` runs it first, so a fresh clone needs nothing else
# than Python 3.11, Java 17 and Maven.

PYTHON      ?= python3.11
VENV        := .venv
PY          := $(VENV)/bin/python
CRYPTOBOT   := $(VENV)/bin/cryptobot
MVN         := mvn -B -q -s jvm/maven-settings.xml
SPARK_JARS  = $(shell ls jars/spark/*.jar 2>/dev/null | tr '\n' ',' | sed 's/,$$//')
# pyspark's launch scripts find Spark through the python on PATH: put the venv's first.
SPARK_ENV   = PATH=$(CURDIR)/$(VENV)/bin:$$PATH SPARK_CONF_DIR=$(CURDIR)/conf \
              PYSPARK_PYTHON=$(CURDIR)/$(VENV)/bin/python
SPARK_MASTER ?= local[2]
JOB         ?= init_tables
PYTEST_ARGS ?=
ARGS        ?=

.PHONY: setup check-tools kafka-up kafka-down kafka-status init produce replay stream scan score execute manage monitor backtest demo sanity sql submit bench test test-unit lint-imports \
        test-spark test-cluster \
        test-integration dist clean clean-data

setup: check-tools $(VENV)/.installed jars/spark/.installed jars/kafka/.installed samples/.installed

check-tools:
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	@command -v java >/dev/null || { echo "need Java 17 (java not found)"; exit 1; }
	@java -version 2>&1 | head -1 | grep -qE '"(1[7-9]|2[0-9])' || { echo "need Java 17 or newer: $$(java -version 2>&1 | head -1)"; exit 1; }
	@command -v mvn >/dev/null || { echo "need Maven (mvn) to fetch the JVM jars"; exit 1; }

# The runtime's packages and the tests' (requirements-test.txt), in one resolve: the venv runs both.
$(VENV)/.installed: requirements.txt requirements-test.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-test.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Delta and the Kafka source, minus what the pyspark wheel already ships.
jars/spark/.installed: jvm/spark-jars.pom.xml jvm/prune_spark_jars.py $(VENV)/.installed
	rm -rf jars/spark
	$(MVN) -f jvm/spark-jars.pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/jars/spark
	$(PY) jvm/prune_spark_jars.py jars/spark
	touch $@

# The Apache Kafka broker (KRaft) and its logging backend, on a classpath of its own.
jars/kafka/.installed: jvm/kafka-broker.pom.xml
	rm -rf jars/kafka
	$(MVN) -f jvm/kafka-broker.pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/jars/kafka
	touch $@

# The sample series (Bitstamp BTC/USD 1m, from the ohlc-toolkit sdist on PyPI, sha256-checked).
samples/.installed: streaming/sample_data.py $(VENV)/.installed
	$(PY) -m streaming.sample_data fetch
	touch $@

kafka-up: setup
	$(CRYPTOBOT) kafka up

kafka-down:
	@if [ -x $(CRYPTOBOT) ]; then $(CRYPTOBOT) kafka down; else echo "nothing installed, no broker"; fi

kafka-status: setup
	$(CRYPTOBOT) kafka status

init: setup
	$(CRYPTOBOT) init

# Ingestion. ARGS passes options through, e.g. make produce ARGS="--once --since 2024-01-01"
produce: setup
	$(CRYPTOBOT) produce $(ARGS)

# The sample series (or ARGS="--from file --file x.csv ...") into Kafka.
replay: setup
	$(CRYPTOBOT) replay $(if $(ARGS),$(ARGS),--from sample)

# Paper trading on the sample, as if live, in data/demo with its own broker: replay the sample
# into Kafka, run the stream over it (nothing traded after the fact), then step a clock through
# it scoring, executing and managing as of each step; exit 1 unless the books reconcile.
# All 14 days go through the stream; the last DEMO_DAYS are traded (the rest warm up the
# analytics), which keeps the demo within 15 minutes here. make demo DEMO_DAYS=14 trades them all.
DEMO_DAYS ?= 5
DEMO_ENV = CRYPTOBOT_PATHS__DATA_DIR=$(CURDIR)/data/demo CRYPTOBOT_LAKE__ROOT=$(CURDIR)/data/demo/lake \
           CRYPTOBOT_LAKE__CHECKPOINT_ROOT=$(CURDIR)/data/demo/checkpoints \
           CRYPTOBOT_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:19092 CRYPTOBOT_KAFKA__CONTROLLER_PORT=19093 \
           CRYPTOBOT_STREAMING__TRADING_JOBS=off
demo: setup
	-$(DEMO_ENV) $(CRYPTOBOT) kafka down
	rm -rf data/demo
	$(DEMO_ENV) $(CRYPTOBOT) kafka up
	$(DEMO_ENV) $(CRYPTOBOT) init
	$(DEMO_ENV) $(CRYPTOBOT) replay --from sample
	$(DEMO_ENV) $(CRYPTOBOT) stream --available-now
	$(DEMO_ENV) $(CRYPTOBOT) demo --days $(DEMO_DAYS) $(ARGS); status=$$?; \
	$(DEMO_ENV) $(CRYPTOBOT) kafka down; exit $$status

# The streaming app: Kafka -> bronze. make stream ARGS=--available-now to drain and exit.
stream: setup
	$(CRYPTOBOT) stream $(ARGS)

# Find setups in the analytics tables (the stream does this per batch), then score them.
scan: setup
	$(CRYPTOBOT) scan $(ARGS)

score: setup
	$(CRYPTOBOT) score $(ARGS)

# Trade confirmed signals (paper unless gold.trading_config says otherwise) and manage positions.
execute: setup
	$(CRYPTOBOT) execute $(ARGS)

manage: setup
	$(CRYPTOBOT) manage $(ARGS)

# Signals, positions, P&L and the pipeline's health; ARGS="--watch 10" refreshes, ARGS="--format json".
monitor: setup
	$(CRYPTOBOT) monitor $(ARGS)

# The live strategy on history (conf/backtest.yaml); e.g. ARGS="--report data/report --set timeframes=1h".
backtest: setup
	$(CRYPTOBOT) backtest $(ARGS)

# Reconciliation and data checks; exits non-zero when one fails.
sanity: setup
	$(CRYPTOBOT) sanity $(ARGS)

# Interactive Spark SQL over the lake (tables registered by an init script).
sql: setup
	@mkdir -p data
	$(CRYPTOBOT) sql-init-script > data/register_tables.sql
	$(SPARK_ENV) spark-sql --properties-file conf/spark-defaults.conf \
	  --conf spark.databricks.delta.commitInfo.userMetadata=os_user=$$(id -un) \
	  --jars $(SPARK_JARS) -i data/register_tables.sql

# Any job through spark-submit, as on a cluster: make submit JOB=init_tables SPARK_MASTER=yarn
submit: dist
	$(SPARK_ENV) spark-submit --master '$(SPARK_MASTER)' --properties-file conf/spark-defaults.conf \
	  --jars $(SPARK_JARS) --py-files dist/cryptobot.zip jobs/$(JOB).py

# The whole suite: unit, Spark (real Delta) and integration (real Kafka broker) tests, but for the
# standalone-cluster test (make test-cluster).
test: setup lint-imports
	$(PY) -m pytest tests -m "not cluster" $(PYTEST_ARGS)

# A Spark standalone master and worker on this machine; the stream and a backtest there equal local mode.
test-cluster: setup
	$(PY) -m pytest tests -m cluster $(PYTEST_ARGS)

# Quick loop: pure functions only, no JVM.
test-unit: setup lint-imports
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# The import layers (.importlinter): jobs > streaming > common, the domain core and the exchange
# adapters below the stages. Circles and private imports: tests/unit/test_layers.py.
lint-imports: setup
	$(VENV)/bin/lint-imports

test-spark: setup
	$(PY) -m pytest tests/spark $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# Figures: start-up and init times of the local stack.
bench: setup
	$(PY) -m pip install -q -r requirements-bench.txt
	$(PY) bench/startup.py
	$(PY) bench/replay_throughput.py
	$(PY) bench/analytics_incremental.py
	$(PY) bench/backtest_speed.py
	$(PY) bench/backtest_speed.py --grid
	$(PY) bench/backtest_symbol_speed.py
	$(PY) bench/latency.py

# A wheel and a zip of the code for spark-submit --py-files, and the --jars list (dist/spark-jars.txt).
dist: setup
	rm -rf dist build
	$(PY) -m pip wheel -q --no-deps -w dist .
	$(PY) jvm/build_dist.py dist
	@ls -1 dist

clean-data: kafka-down
	rm -rf data

clean: clean-data
	rm -rf $(VENV) jars dist build *.egg-info
