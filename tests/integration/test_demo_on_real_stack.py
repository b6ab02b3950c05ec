"""``rapport demo --kafka … --database-url … --redis-url …``: the same simulated network, small,
through the services on a real Kafka, PostgreSQL and Redis."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from rich.console import Console

from rapport.demo import run
from shared.settings import Settings


async def test_a_small_network_runs_through_the_real_stack(
    real_settings: Settings, tmp_path: Path
) -> None:
    args = argparse.Namespace(
        out=str(tmp_path),
        seed=3,
        sites=1,
        therapists=4,
        clients=10,
        weeks=5,
        kafka=real_settings.kafka_bootstrap,
        database_url=None,
        redis_url=None,
        serve=False,
        port=0,
        progress=False,
    )
    result = await run(args, real_settings, Console(file=io.StringIO()))
    counts = result.counts()
    assert counts["matched"] == 10
    assert counts["sessions"] > 10
    assert counts["alerts"] > 0
    assert counts["webhooks_delivered"] == counts["alerts"]
    assert counts["webhooks_rejected"] == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["responses"] == result.live.responses
    assert (tmp_path / "report" / "index.html").read_text().count("<svg") >= 4
