"""DataFrames of rows the driver holds (a job's orders, a scorer's updates, a batch's bounds).

`spark.createDataFrame` of Python rows, or of pandas without Arrow, builds a Python RDD: its
first action starts Python workers and pickles the rows through them, about 0.8 s here however
few rows there are, and a MERGE whose source it is pays it on every pass. Handed an Arrow table,
Spark sends the rows to the JVM in one piece instead (about 0.04 s). The trading jobs and the
stream's batches make several such frames per step, so `local_frame` is what they use.

A missing value, None or pandas' NaN, becomes null. Values are converted as Spark's own
conversion does, never silently changed: a whole float into an integer column (pandas holds a
nullable integer as float), a number into a decimal column rounded half up to its scale, a
naive datetime read as UTC (the lake's times are all UTC); a fractional float for an integer
column is an error.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import DataType, DecimalType, IntegralType, StructType


def local_frame(spark: SparkSession, rows: pd.DataFrame | Iterable[Sequence | Mapping], schema: StructType | str
                ) -> DataFrame:
    """A DataFrame of `rows` (a pandas frame with the schema's columns, tuples in the schema's
    order, or mappings holding every column by name) with exactly `schema` (a StructType or a
    DDL string)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    struct = schema if isinstance(schema, StructType) else StructType.fromDDL(schema)
    arrow_schema = to_arrow_schema(struct)
    if isinstance(rows, pd.DataFrame):
        columns = [rows[name].tolist() for name in struct.fieldNames()]
    else:
        tuples = [tuple(r[name] for name in struct.fieldNames()) if isinstance(r, Mapping) else r for r in rows]
        columns = [list(values) for values in zip(*tuples)] if tuples else [[] for _ in struct.fields]
    arrays = []
    for values, spark_field, arrow_field in zip(columns, struct.fields, arrow_schema):
        convert = _converter(spark_field.name, spark_field.dataType)
        arrays.append(pa.array([None if _missing(v) else convert(v) for v in values], type=arrow_field.type))
    return spark.createDataFrame(pa.Table.from_arrays(arrays, schema=arrow_schema), struct)


def stored_values(row: Mapping, schema: StructType) -> dict:
    """`row`'s values as a frame of it would hold them (None for missing, decimals at their
    column's scale): to tell whether a row already stored needs writing again."""
    return {f.name: None if _missing(row[f.name]) else _converter(f.name, f.dataType)(row[f.name])
            for f in schema.fields if f.name in row}


def _missing(value) -> bool:
    # NaN is the only value not equal to itself; NaT is how pandas says a time is missing.
    return value is None or value is pd.NaT or (isinstance(value, float) and value != value)


def _converter(name: str, data_type: DataType) -> Callable[[Any], Any]:
    if isinstance(data_type, IntegralType):
        def whole(value):
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(f"{name}: {value} is not a whole number")
                return int(value)
            return value
        return whole
    if isinstance(data_type, DecimalType):
        step = Decimal(1).scaleb(-data_type.scale)
        return lambda value: (value if isinstance(value, Decimal) else Decimal(str(value))).quantize(
            step, rounding=ROUND_HALF_UP)
    return lambda value: value
