"""Unit tests use no network and start no servers (`make test-fast` runs them in seconds): a test that opens
a TCP connection or binds a port in this process fails, saying so. (Subprocesses are not watched: scripts that
start the local stack, such as the benchmark smoke runs, belong in tests/integration.)"""

from __future__ import annotations

import socket
from typing import Any

import pytest


class NetworkUsedInUnitTestError(AssertionError):
    pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    original = {"connect": socket.socket.connect, "bind": socket.socket.bind}

    def connect(self: socket.socket, *args: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            message = f"unit tests use no network: connect to {args[0]} (move the test to integration)"
            raise NetworkUsedInUnitTestError(message)
        original["connect"](self, *args)

    def bind(self: socket.socket, *args: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkUsedInUnitTestError(f"unit tests start no servers: bind to {args[0]} (move it to integration)")
        original["bind"](self, *args)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "bind", bind)
