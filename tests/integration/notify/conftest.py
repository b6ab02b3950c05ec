from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.infra import Infra
from tests.support.notify_stack import NotifyStack, notify_stack


@pytest.fixture(scope="package")
async def stack(infra: Infra) -> AsyncIterator[NotifyStack]:
    """Notify in this process on the real stack, shared by the in-process tests of this package
    (starting its six Kafka consumers is the slow part); each test uses its own site."""
    async with notify_stack(infra) as running:
        yield running
