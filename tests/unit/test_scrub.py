"""Error text is scrubbed of signatures, query strings and key-like tokens before it is stored
(gold.job_runs.error, trading.orders.error); the exchange's own words are kept."""
import pytest

from common.scrub import scrub_secrets

SIGNATURE = "3b2f6f1c7a9e4d5b8c0a1e2f3d4c5b6a7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b"  # HMAC-SHA256, hex
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"  # Binance's format


@pytest.mark.parametrize("text", [
    'binance {"code":-2019,"msg":"Margin is insufficient."}',  # ccxt's InsufficientFunds
    "binance: Margin is insufficient",
    'binance {"code":-1022,"msg":"Signature for this request is not valid."}',
    'bybit {"retCode":110007,"retMsg":"ab not enough for new order","result":{},"retExtInfo":{},"time":1733500000123}',
    "RequestTimeout: binance POST https://fapi.binance.com/fapi/v1/order request timed out (10000 ms)",
    "DeltaConcurrentAppendException: [DELTA_CONCURRENT_APPEND.WITHOUT_HINT] Files were added to the root of the "
    "table by a concurrent update. at /tmp/pytest-of-root/pytest-22/cryptobot0/lake/trading/orders",
    "Py4JJavaError: application_1700000000000_0001 lost executor 3",
    "",
])
def test_ordinary_errors_are_kept_as_they_are(text):
    assert scrub_secrets(text) == text


def test_none_stays_none():
    assert scrub_secrets(None) is None


def test_a_network_error_keeps_the_url_s_host_and_path_but_not_its_query_string():
    text = ("NetworkError: binance GET https://fapi.binance.com/fapi/v1/order?symbol=BTCUSDT"
            f"&origClientOrderId=cb-abc-entry-0&timestamp=1733500000000&recvWindow=10000&signature={SIGNATURE}")
    assert scrub_secrets(text) == "NetworkError: binance GET https://fapi.binance.com/fapi/v1/order?<redacted>"
    assert scrub_secrets(f"binance DELETE /fapi/v1/order?timestamp=1&signature={SIGNATURE[:8]} 503") == (
        "binance DELETE /fapi/v1/order?<redacted> 503")


@pytest.mark.parametrize("text, expected", [
    (f"headers {{'X-MBX-APIKEY': '{API_KEY}', 'Content-Type': 'application/json'}}",
     "headers {'X-MBX-APIKEY': '<redacted>', 'Content-Type': 'application/json'}"),
    (f'{{"apiKey": "{API_KEY}", "enableRateLimit": true}}', '{"apiKey": "<redacted>", "enableRateLimit": true}'),
    ("api_key=short1 signature=ab12 secret: s3 password='hunter2'",
     "api_key=<redacted> signature=<redacted> secret: <redacted> password='<redacted>'"),
    ("X-BAPI-API-KEY: XXXXXXXXXXXXXXXXXX X-BAPI-SIGN: deadbeef", "X-BAPI-API-KEY: <redacted> X-BAPI-SIGN: <redacted>"),
    ("OK-ACCESS-PASSPHRASE=pass phrase", "OK-ACCESS-PASSPHRASE=<redacted> phrase"),
])
def test_named_credentials_lose_their_values(text, expected):
    assert scrub_secrets(text) == expected


@pytest.mark.parametrize("text, expected", [
    (f"signed {SIGNATURE} rejected", "signed <redacted> rejected"),
    (f"key {API_KEY}.", "key <redacted>."),
    ("okx key a1b2c3d4-e5f6-7890-abcd-ef1234567890 invalid", "okx key <redacted> invalid"),
    ("okx sign dGhpcyBpcyBhIHNpZ25hdHVyZSBvZiBzb21lIGRhdGE= invalid", "okx sign <redacted> invalid"),
    # Bybit's "error sign!" shows the string it signed: timestamp, API key, recv window, query
    ('bybit {"retCode":10004,"retMsg":"error sign! origin_string[1733500000000XXXXXXXXXXXXXXXXXX5000category=linear]"}',
     'bybit {"retCode":10004,"retMsg":"error sign! origin_string[<redacted>=linear]"}'),
])
def test_long_hex_or_base64_like_tokens_are_redacted(text, expected):
    assert scrub_secrets(text) == expected


def test_a_failed_run_s_error_is_scrubbed_before_it_is_stored():
    from common.job_runs import RunRecords

    def work():
        raise RuntimeError(f"binance GET https://fapi.binance.com/fapi/v2/account?timestamp=1&signature={SIGNATURE}")

    records = RunRecords(spark=None, config=None)  # rows are only written when the block ends
    with pytest.raises(RuntimeError):
        records.run("position_manager", work)
    error = records.rows[0][8]
    assert error == "RuntimeError: binance GET https://fapi.binance.com/fapi/v2/account?<redacted>"
