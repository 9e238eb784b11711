"""The unit suite's guard (tests/unit/conftest.py) refuses network use, so `make test-fast` stays server-free."""

from __future__ import annotations

import socket

import pytest

from tests.unit.conftest import NetworkUsedInUnitTestError


@pytest.mark.parametrize("call", ["connect", "bind"])
def test_a_unit_test_that_touches_the_network_fails(call: str) -> None:
    # Given a TCP socket in a unit test; When it connects or binds to loopback; Then the guard refuses
    with socket.socket() as sock, pytest.raises(NetworkUsedInUnitTestError, match="unit tests"):
        getattr(sock, call)(("127.0.0.1", 9))


def test_unix_sockets_are_still_allowed() -> None:
    # Given a Unix socket pair (no network), When it is used, Then it works
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"x")
        assert right.recv(1) == b"x"
