"""`cryptobot sql "<query>"`: Spark SQL over the registered lake tables, printed for people
(table) or programs (csv, json)."""
from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Sequence

FORMATS = ("table", "csv", "json")


def run_sql(spark, query: str, max_rows: int) -> tuple[list[str], list[tuple], bool]:
    """Run one statement; return its columns, up to max_rows rows, and whether it was cut."""
    result = spark.sql(query)
    rows = result.take(max_rows + 1)
    return result.columns, [tuple(row) for row in rows[:max_rows]], len(rows) > max_rows


def format_result(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([dict(zip(columns, map(jsonable, row))) for row in rows], indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_text(v) for v in row] for row in rows])
        return out.getvalue().rstrip("\n")
    if fmt == "table":
        return _ascii_table(columns, rows)
    raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")  # 1.500000000000000000 -> 1.5, 10 -> 10
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _text(value)  # as a string: a float would lose money's digits
    if hasattr(value, "asDict"):
        return {k: jsonable(v) for k, v in value.asDict().items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def _ascii_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_text(v) if v is not None else "NULL" for v in row] for row in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def render(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"

    out = [line, render(columns), line] + [render(row) for row in cells] + [line]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)
