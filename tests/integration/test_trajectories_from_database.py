"""Expected trajectories fitted from analytics' own closed episodes on real PostgreSQL, as the
application role under row-level security: ``rapport trajectories fit --from-database`` reads
every site's closed episodes (client outcome scores only; open episodes, other respondents and
alliance measures left out) and writes counts only; the scheduled refit
(RAPPORT_TRAJECTORIES_REFIT_HOURS) writes the file when due, and not while another replica
holds the refit's advisory lock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, insert, select

from rapport.cli import main as rapport
from rapport.trajectories.model import load_model
from services.analytics.models import EPISODES, SCORES
from services.analytics.trajectory_refit import REFIT_LOCK, refit_once
from shared.db import Sessionmaker, all_sites, make_engine, make_sessionmaker
from shared.instruments import SHIPPED, load_instruments
from shared.settings import Settings

SITES = ("site-a", "site-b")
PER_SITE = 12
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def closed_totals(site: int, i: int) -> tuple[float, float]:
    """A closed episode's client ORS at sessions 1 and 2 (all in band 4: 20–24.9)."""
    return 20 + (i % 5) + site * 0.5, 22 + i + site


@pytest.fixture
async def analytics_db(real_settings: Settings) -> AsyncIterator[Sessionmaker]:
    engine = make_engine(real_settings.database_url_for("analytics"), pool_size=2)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def seed(sessionmaker: Sessionmaker) -> None:
    episodes, scores = [], []

    def score(episode: str, site: str, session: int, total: float, **extra: str) -> None:
        scores.append(
            {
                "response_id": f"{episode}-{session}-{len(scores)}",
                "episode_id": episode,
                "site_id": site,
                "therapist_id": "th-1",
                "session_number": session,
                "respondent": extra.get("respondent", f"{episode}-client"),
                "respondent_role": extra.get("role", "client"),
                "instrument": extra.get("instrument", "ors"),
                "total": str(total),
                "concern": False,
                "recorded_at": NOW + timedelta(minutes=len(scores)),
            }
        )

    for s, site in enumerate(SITES):
        for i in range(PER_SITE):
            closed = f"ep-{site}-closed-{i}"
            episodes.append(episode_row(closed, site, closed_at=NOW))
            first, second = closed_totals(s, i)
            score(closed, site, 1, first)
            score(closed, site, 2, second)
            # Not fitted: the therapist's view and an alliance measure.
            score(closed, site, 1, 3.0, role="therapist", respondent="th-1")
            score(closed, site, 1, 36.0, instrument="srs")
            # Open episodes: their trajectory is still being judged.
            still_open = f"ep-{site}-open-{i}"
            episodes.append(episode_row(still_open, site, closed_at=None))
            score(still_open, site, 1, 21.0)
            score(still_open, site, 2, 1.0)
    with all_sites():
        async with sessionmaker() as session, session.begin():
            await session.execute(insert(EPISODES), episodes)
            await session.execute(insert(SCORES), scores)


def episode_row(episode: str, site: str, *, closed_at: datetime | None) -> dict[str, object]:
    return {
        "episode_id": episode,
        "site_id": site,
        "therapist_id": "th-1",
        "domains": [],
        "phase": "closed" if closed_at else "active",
        "state": None,
        "last_session": 2,
        "updated_at": NOW,
        "closed_at": closed_at,
        "close_reason": "completed" if closed_at else None,
    }


def expected(session: int) -> dict[str, float]:
    totals = [closed_totals(s, i)[session - 1] for s in range(len(SITES)) for i in range(PER_SITE)]
    p = np.percentile(totals, (10, 25, 50, 75, 90)).round(3).tolist()
    return {"n": len(totals), "p10": p[0], "p25": p[1], "p50": p[2], "p75": p[3], "p90": p[4]}


async def test_fit_from_database_reads_every_sites_closed_episodes_and_writes_counts_only(
    real_settings: Settings,
    analytics_db: Sessionmaker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await seed(analytics_db)
    monkeypatch.setenv("RAPPORT_DATABASE_URL", real_settings.database_url)
    out = tmp_path / "model.json"
    min_episodes = str(len(SITES) * PER_SITE)  # only both sites together are enough

    code = await asyncio.to_thread(
        rapport,
        [
            "trajectories",
            "fit",
            "--from-database",
            "--out",
            str(out),
            "--min-episodes",
            min_episodes,
        ],
    )

    assert code == 0, capsys.readouterr().err
    text = out.read_text()
    model = load_model(text, load_instruments(SHIPPED))
    assert list(model.instruments) == ["ors"]
    sessions = model.instruments["ors"].bands["4"].sessions
    assert list(model.instruments["ors"].bands) == ["4"]
    assert sessions["1"].model_dump() == expected(1)
    assert sessions["2"].model_dump() == expected(2)
    assert model.data.episodes == len(SITES) * PER_SITE
    assert model.data.records_fitted == 2 * len(SITES) * PER_SITE
    assert model.skipped == []
    for identifier in ("ep-", "site-", "th-1", "client"):
        assert identifier not in text
    assert json.loads(text)["data"]["bad_lines"] == 0


async def test_fit_from_database_refuses_an_unreachable_database_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "RAPPORT_DATABASE_URL", "postgresql+asyncpg://nobody:nothing@127.0.0.1:1/none"
    )
    out = tmp_path / "model.json"

    code = await asyncio.to_thread(
        rapport, ["trajectories", "fit", "--from-database", "--out", str(out)]
    )

    assert code == 2
    assert "cannot read analytics' database" in capsys.readouterr().err
    assert not out.exists()


async def test_the_scheduled_refit_writes_the_model_when_due_and_once_per_period(
    analytics_db: Sessionmaker, tmp_path: Path
) -> None:
    await seed(analytics_db)
    instruments = load_instruments(SHIPPED)
    path = tmp_path / "model.json"

    first = await refit_once(analytics_db, instruments, path, hours=24, min_episodes=5)

    assert first is not None
    on_disk = load_model(path.read_bytes(), instruments)
    assert on_disk.instruments["ors"].bands["4"].sessions["2"].model_dump() == expected(2)
    # Not due again within the period (another replica sharing the file skips too).
    assert await refit_once(analytics_db, instruments, path, hours=24, min_episodes=5) is None
    assert load_model(path.read_bytes(), instruments) == on_disk


async def test_the_scheduled_refit_skips_while_another_replica_holds_the_lock(
    analytics_db: Sessionmaker, tmp_path: Path
) -> None:
    await seed(analytics_db)
    instruments = load_instruments(SHIPPED)
    path = tmp_path / "model.json"

    async with analytics_db() as other, other.begin():  # another replica, mid-refit
        assert await other.scalar(select(func.pg_try_advisory_xact_lock(REFIT_LOCK)))
        assert await refit_once(analytics_db, instruments, path, hours=1) is None
        assert not path.exists()

    assert await refit_once(analytics_db, instruments, path, hours=1, min_episodes=5) is not None
    assert path.exists()
