"""System tests: the four services as separate processes on the real stack
(tests/support/system.py)."""

from __future__ import annotations

import logging

import pytest

# One line per HTTP request of the load generator would drown the output.
logging.getLogger("httpx").setLevel(logging.WARNING)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "system" in item.nodeid.split("/"):
            item.add_marker(pytest.mark.integration)
