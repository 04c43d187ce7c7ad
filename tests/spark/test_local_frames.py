"""local_frame: the driver's rows as a DataFrame through Arrow, with the same values Spark's
own (Python-worker) conversion gives, missing values as null, and no value silently changed."""
from datetime import date, datetime, timezone
from decimal import Decimal

import pandas as pd
import pytest
from pyspark.sql.types import StructType

from common.local_frames import local_frame, stored_values

SCHEMA = ("id string, n int, big bigint, price decimal(38,18), ratio double, flag boolean, at timestamp, "
          "day date, reason string")


def test_tuples_come_out_as_spark_own_conversion_gives_them(spark):
    rows = [("a", 1, 2**40, Decimal("65432.123456789"), 0.25, True, datetime(2026, 8, 26, 13, 45, 0, 123000),
             date(2026, 8, 26), "stop loss"),
            ("b", None, None, None, None, None, None, None, None)]
    assert local_frame(spark, rows, SCHEMA).collect() == spark.createDataFrame(rows, SCHEMA).collect()


def test_mappings_by_column_name_give_the_rows_tuples_give(spark):
    schema = "id string, n int, price decimal(38,18)"
    rows = [{"price": Decimal("1.5"), "id": "a", "n": 1, "ignored": "x"}, {"id": "b", "n": None, "price": 2}]
    assert local_frame(spark, rows, schema).collect() == local_frame(
        spark, [("a", 1, Decimal("1.5")), ("b", None, 2)], schema).collect()
    assert stored_values(rows[1], StructType.fromDDL(schema)) == {"id": "b", "n": None,
                                                                   "price": Decimal("2").quantize(Decimal("1e-18"))}


def test_naive_times_are_utc_whatever_the_process_timezone(spark):
    naive, aware = datetime(2026, 8, 26, 13, 45), datetime(2026, 8, 26, 13, 45, tzinfo=timezone.utc)
    frame = local_frame(spark, [(naive,), (aware,)], "at timestamp")
    assert [r.ms for r in frame.selectExpr("unix_millis(at) AS ms").collect()] == [1_787_751_900_000] * 2


def test_a_pandas_frame_with_gaps_gives_nulls_and_whole_floats_as_integers(spark):
    frame = pd.DataFrame({"id": ["a", "b"], "n": [3.0, float("nan")], "ratio": [float("nan"), 1.5],
                          "at": [pd.Timestamp("2026-08-26 13:45"), pd.NaT], "extra": [1, 2]})
    rows = local_frame(spark, frame, "id string, n bigint, ratio double, at timestamp").collect()
    assert [tuple(r) for r in rows] == [("a", 3, None, datetime(2026, 8, 26, 13, 45)), ("b", None, 1.5, None)]


def test_a_number_into_a_decimal_is_rounded_half_up_to_its_scale(spark):
    rows = local_frame(spark, [(Decimal("0.1234567890123456785"),), (0.1,), (2,)], "fee decimal(38,18)").collect()
    assert [r.fee for r in rows] == [Decimal("0.123456789012345679"), Decimal("0.1").quantize(Decimal("1e-18")),
                                     Decimal("2").quantize(Decimal("1e-18"))]


def test_a_fraction_for_an_integer_column_is_an_error_not_a_truncation(spark):
    with pytest.raises(ValueError, match="n: 1.5 is not a whole number"):
        local_frame(spark, [(1.5,)], "n int")


def test_no_rows_give_an_empty_frame_of_the_schema(spark):
    frame = local_frame(spark, [], "id string, n int")
    assert frame.count() == 0 and frame.schema.simpleString() == "struct<id:string,n:int>"
