"""The test suite's guard: no test may open a socket to anything but loopback."""
import socket

import pytest


@pytest.mark.parametrize("address", ["192.0.2.1", "10.0.0.1", "8.8.8.8"])
def test_a_non_loopback_connection_fails_at_once(address):
    with pytest.raises(RuntimeError, match="non-loopback address"):
        socket.create_connection((address, 443), timeout=5)


def test_loopback_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        socket.create_connection(server.getsockname(), timeout=5).close()
