"""Fixtures for the interop tests: one wsstream connection per test against a real peer.

The ``kind`` fixture runs each test against four peers: Python ``websockets`` and Node ``ws``, each as server
(wsstream is the client) and as client (wsstream is the server). The Node peers skip with the reason when
node or tests/interop/node/node_modules is missing, or fail instead under ``WSSTREAM_REQUIRE_ALL=1``.
"""

from __future__ import annotations

import pytest

from tests.interop.peers import node_missing
from tests.support import skip_or_fail

KINDS = ("websockets-server", "websockets-client", "node-server", "node-client")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "compression: needs permessage-deflate in wsstream (expected to pass once compression lands)",
    )


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Which peer the test talks to: ``<library>-<the peer's side>``."""
    value: str = request.param
    if value.startswith("node-"):
        reason = node_missing()
        if reason:
            skip_or_fail(reason)
    return value
