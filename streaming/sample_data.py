"""The sample series for the offline demo and the tests: Bitstamp's public BTC/USD 1-minute
history (14 days, 20,160 rows, Apache-2.0), as shipped in the sdist of ohlc-toolkit 3.1.2.

`make setup` fetches it once from PyPI (the only place this machine may download from),
verifies both the sdist's and the file's sha256, and caches it under samples/. Nothing is
ever downloaded at test time.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import tarfile
import urllib.request
from pathlib import Path

from common.config import PROJECT_ROOT

PACKAGE, VERSION = "ohlc-toolkit", "3.1.2"
SDIST_NAME = "ohlc_toolkit-3.1.2.tar.gz"
MEMBER = "ohlc_toolkit-3.1.2/tests/test_data/bitstamp_btcusd_1min_14d.csv.gz"
SAMPLE_SHA256 = "2df16fee6df8f0b605fe86a79033c7b3b89aeed3bc75a034f3334f0bce75bac8"
SAMPLE_ROWS = 20_160
SAMPLE_SOURCE = "bitstamp:BTC/USD:1m (ohlc-toolkit 3.1.2 test data, Apache-2.0)"
SAMPLE_DIR = PROJECT_ROOT / "samples"
SAMPLE_PATH = SAMPLE_DIR / "bitstamp_btcusd_1min_14d.csv.gz"


class SampleDataError(RuntimeError):
    pass


def sample_path() -> Path:
    """The cached sample, checked; a clear error if `make setup` has not fetched it."""
    if not SAMPLE_PATH.exists():
        raise SampleDataError(f"sample data missing at {SAMPLE_PATH}: run `make setup`")
    if _sha256(SAMPLE_PATH.read_bytes()) != SAMPLE_SHA256:
        raise SampleDataError(f"sample data at {SAMPLE_PATH} fails its checksum: delete it and run `make setup`")
    return SAMPLE_PATH


def fetch_sample(index_url: str | None = None) -> Path:
    if SAMPLE_PATH.exists() and _sha256(SAMPLE_PATH.read_bytes()) == SAMPLE_SHA256:
        return SAMPLE_PATH
    index_url = (index_url or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/")
    url, sdist_sha256 = _sdist_url(index_url)
    sdist = _download(url)
    if sdist_sha256 and _sha256(sdist) != sdist_sha256:
        raise SampleDataError(f"{SDIST_NAME} from {url} does not match the index's sha256")
    with tarfile.open(fileobj=io.BytesIO(sdist), mode="r:gz") as archive:
        member = archive.extractfile(MEMBER)
        if member is None:
            raise SampleDataError(f"{MEMBER} not found in {SDIST_NAME}")
        data = member.read()
    if _sha256(data) != SAMPLE_SHA256:
        raise SampleDataError(f"{MEMBER} does not match its expected sha256 {SAMPLE_SHA256}")
    SAMPLE_DIR.mkdir(parents=True, exist_ok=True)
    partial = SAMPLE_PATH.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(SAMPLE_PATH)
    return SAMPLE_PATH


def _sdist_url(index_url: str) -> tuple[str, str | None]:
    """The sdist's URL and sha256 from a PEP 691 (JSON) or PEP 503 (HTML) simple index."""
    page_url = f"{index_url}/{PACKAGE}/"
    request = urllib.request.Request(page_url, headers={
        "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"})
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read().decode()
        content_type = response.headers.get("Content-Type", "")
    if "json" in content_type:
        for entry in json.loads(body)["files"]:
            if entry["filename"] == SDIST_NAME:
                return entry["url"], entry.get("hashes", {}).get("sha256")
    else:
        for href in re.findall(r'href="([^"]+)"', body):
            if href.split("#")[0].endswith("/" + SDIST_NAME) or href.split("#")[0] == SDIST_NAME:
                digest = re.search(r"sha256=([0-9a-f]{64})", href)
                return urllib.request.urljoin(page_url, href.split("#")[0]), digest and digest.group(1)
    raise SampleDataError(f"{SDIST_NAME} not listed at {page_url}")


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


if __name__ == "__main__":
    if sys.argv[1:] != ["fetch"]:
        sys.exit("usage: python -m streaming.sample_data fetch")
    print(f"sample data: {fetch_sample()}")
