"""A test's own Kafka topics (named with its prefix): listed, and deleted when it is done, so a
long run does not leave the broker holding thousands of partitions (and their open files)."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient


async def topics_of(bootstrap: str, prefix: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if t.startswith(prefix))
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, prefix: str) -> None:
    present = await topics_of(bootstrap, prefix)
    if not present:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(present)
    finally:
        await admin.close()
