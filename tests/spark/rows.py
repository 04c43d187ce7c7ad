"""Hand-written rows into the lake's tables, for the Spark tests."""
from datetime import datetime


def append(spark, table, rows):
    """Rows of a table given by their columns of interest; the rest null, timestamps fixed."""
    schema = spark.table(table).schema
    now = datetime(2026, 8, 20)
    values = [tuple(row.get(f.name, now if f.dataType.typeName() == "timestamp" else None) for f in schema)
              for row in rows]
    spark.createDataFrame(values, schema).write.insertInto(table)
