"""Error text scrubbed before it is stored (trading.orders.error, gold.job_runs.error) or
logged: an exchange's error can carry the signed request (its URL's query string with the
signature and the timestamp), a header with the API key, or a token; the exchange's own words
("Margin is insufficient.") are kept as they are."""
from __future__ import annotations

import re

REDACTED = "<redacted>"

# Names whose value is a credential, as a query parameter, a header, a JSON or a Python key.
_SECRET_NAMES = (
    "signature", "sign", "apikey", "api_key", "api-key", "api_secret", "api-secret", "secret", "secret_key",
    "password", "api_password", "passphrase", "token", "access_token", "authorization",
    "x-mbx-apikey", "x-bapi-api-key", "x-bapi-sign", "ok-access-key", "ok-access-sign", "ok-access-passphrase",
)
_NAMED_VALUE = re.compile(
    r"""(?ix)
    (["']?(?<![\w-])(?:""" + "|".join(re.escape(n) for n in sorted(_SECRET_NAMES, key=len, reverse=True)) + r""")
     ["']?\s*[:=]\s*(?:bearer\s+)?["']?)   # the name, its separator, an opening quote
    [^\s"'&,;}\]]+                          # the value
    """)
# A query string after a URL or a path: the host and path are kept, the parameters are not.
_QUERY = re.compile(r"(?<=[^\s?=&])\?[\w.\-\[\]%]+=[^\s\"'<>]*")
_TOKEN = re.compile(r"(?<![\w+/-])[\w+/-]{24,}(?:={1,2}(?![\w+/-]))?(?![\w+/-])")
_HEX = re.compile(r"[0-9a-fA-F]+")


def scrub_secrets(text: str | None) -> str | None:
    """`text` with credentials, query strings and key-like tokens replaced by <redacted>."""
    if text is None:
        return None
    text = _QUERY.sub("?" + REDACTED, text)
    text = _NAMED_VALUE.sub(lambda m: m.group(1) + REDACTED, text)
    return _TOKEN.sub(lambda m: _scrub_token(m.group(0)), text)


def _scrub_token(token: str) -> str:
    if "/" in token:  # a path (its folders are kept) or base64 with a slash (its long pieces are not)
        return "/".join(_scrub_token(part) if len(part) >= 24 else part for part in token.split("/"))
    return REDACTED if _looks_like_a_key(token) else token


def _looks_like_a_key(token: str) -> bool:
    """Hex (a signature, an OKX key with its dashes), or letters and digits run together with both
    cases or no separator (an API key or secret, base64); not an identifier such as
    application_1700000000000_0001 or DELTA_CONCURRENT_APPEND."""
    bare = token.rstrip("=")
    if len(bare) < 24 or not any(c.isdigit() for c in bare) or not any(c.isalpha() for c in bare):
        return False
    if _HEX.fullmatch(bare.replace("-", "")):
        return True
    has_both_cases = any(c.isupper() for c in bare) and any(c.islower() for c in bare)
    return has_both_cases or not any(c in "_-" for c in bare)
