"""Remove from jars/spark every jar whose artifact the pyspark wheel already ships.

Maven copies Delta's and the Kafka source's whole runtime tree, which repeats jars pyspark
has (often older: jackson 2.13 beside Spark's 2.20). Two versions of one library on a
classpath is how NoSuchMethodErrors start, so Spark's own copy is the only one kept.
Usage: python jvm/prune_spark_jars.py <jars/spark>
"""
import re
import sys
from pathlib import Path

import pyspark

VERSIONED_JAR = re.compile(r"^(?P<artifact>.+?)-\d[\w.\-]*\.jar$")


def artifact_name(jar_name: str) -> str:
    match = VERSIONED_JAR.match(jar_name)
    return match.group("artifact") if match else jar_name


def main(spark_jars_dir: str) -> None:
    pyspark_jars = Path(pyspark.__file__).parent / "jars"
    shipped = {artifact_name(jar.name) for jar in pyspark_jars.glob("*.jar")}
    for jar in sorted(Path(spark_jars_dir).glob("*.jar")):
        if artifact_name(jar.name) in shipped:
            jar.unlink()
            print(f"pruned {jar.name} (pyspark ships its own)")


if __name__ == "__main__":
    main(sys.argv[1])
