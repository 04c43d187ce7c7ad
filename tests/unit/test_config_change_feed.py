"""What a change to gold.trading_config puts on record: the pure part of common/config_audit.py."""
from datetime import datetime

from common.config_audit import ConfigChange, audit_rows, change_feed_start, config_changes, user_of


def test_an_update_is_one_change_from_the_old_value_to_the_new():
    feed = [(7, "update_preimage", "risk_per_trade_pct", "1.0"), (7, "update_postimage", "risk_per_trade_pct", "2.0")]
    assert config_changes(feed) == [ConfigChange(7, "risk_per_trade_pct", "1.0", "2.0")]


def test_a_rewrite_to_the_same_value_is_no_change_and_a_delete_then_insert_is_one():
    feed = [(3, "update_preimage", "max_positions", "3"), (3, "update_postimage", "max_positions", "3"),
            (4, "delete", "leverage", "2"), (4, "insert", "leverage", "5"),
            (5, "insert", "new_param", "x"), (6, "delete", "old_param", "y")]
    assert config_changes(feed) == [ConfigChange(4, "leverage", "2", "5"), ConfigChange(5, "new_param", None, "x"),
                                    ConfigChange(6, "old_param", "y", None)]


def test_the_user_comes_from_the_commit_metadata_and_values_are_scrubbed():
    assert user_of("os_user=alice") == "alice"
    assert user_of("job=x, os_user=bob") == "bob"
    assert user_of(None) == user_of("something else") == "unknown"
    when = datetime(2026, 12, 7, 10, 0)
    [row] = audit_rows([ConfigChange(9, "api_base_url", "https://a.example", "https://b.example?signature=abcdef")],
                       {9: (when, "os_user=carol", "UPDATE")})
    event_id, entity_type, entity_id, _from, _to, reason, details, actor, event_time, event_date = row
    assert (entity_type, entity_id, reason, actor, event_time, event_date) == (
        "trading_config", "api_base_url", "changed", "carol", when, when.date())
    assert '"old_value": "https://a.example"' in details and "abcdef" not in details and '"table_version": 9' in details
    [again] = audit_rows([ConfigChange(9, "api_base_url", "x", "y")], {9: (when, None, "UPDATE")})
    assert again[0] == event_id  # one event per version and parameter: a re-run adds nothing


def test_the_feed_starts_at_the_latest_commit_that_turned_it_on():
    history = [(0, "CREATE TABLE", {"properties": "{}"}), (1, "WRITE", {}),
               (2, "SET TBLPROPERTIES", {"properties": '{"delta.enableChangeDataFeed":"true"}'}), (3, "UPDATE", {})]
    assert change_feed_start(history) == 2
    assert change_feed_start([(0, "CREATE TABLE", {"properties": '{"delta.enableChangeDataFeed":"true"}'})]) == 0
