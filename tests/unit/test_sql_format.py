"""`cryptobot sql` output: aligned tables for people, CSV and JSON for programs."""
import json
from datetime import datetime
from decimal import Decimal

import pytest

from common.sql_query import format_result

COLUMNS = ["param_name", "value", "updated_at"]
ROWS = [("risk_per_trade_pct", Decimal("1.500000000000000000"), datetime(2026, 1, 2, 3, 4, 5)),
        ("note", None, None)]


def test_table_is_aligned_and_counts_rows():
    lines = format_result(COLUMNS, ROWS, "table").splitlines()
    assert lines[1] == "| param_name         | value | updated_at          |"
    assert lines[3] == "| risk_per_trade_pct | 1.5   | 2026-01-02 03:04:05 |"
    assert lines[4] == "| note               | NULL  | NULL                |"
    assert lines[-1] == "(2 rows)"
    assert len({len(line) for line in lines[:-1]}) == 1


def test_csv_has_a_header_and_empty_nulls():
    assert format_result(COLUMNS, ROWS, "csv").splitlines() == [
        "param_name,value,updated_at", "risk_per_trade_pct,1.5,2026-01-02 03:04:05", "note,,"]


def test_json_keeps_decimals_exact_as_strings():
    parsed = json.loads(format_result(COLUMNS, ROWS, "json"))
    assert parsed[0] == {"param_name": "risk_per_trade_pct", "value": "1.5", "updated_at": "2026-01-02T03:04:05"}
    assert parsed[1]["value"] is None


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        format_result(COLUMNS, ROWS, "xml")
