"""Analytics with a trajectories model (RAPPORT_TRAJECTORIES_FILE) on the real stack (Kafka,
PostgreSQL under row-level security, Redis): it opens and resolves the same alerts as
``rapport replay --trajectories`` for the same records."""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings
from tests.support.feedback import feedback_desk
from tests.unit.analytics.test_rule_9_trajectories import model
from tests.unit.analytics.test_trajectories_in_analytics import service_and_replay_agree


async def test_the_live_service_and_replay_agree_on_the_real_stack(
    real_settings: Settings, tmp_path: Path
) -> None:
    model_file = tmp_path / "model.json"
    model_file.write_text(model().model_dump_json())
    settings = real_settings.model_copy(update={"trajectories_file": str(model_file)})
    names = ("intake", "feedback", "analytics")
    async with feedback_desk(settings, names, embedded=False) as desk:
        await service_and_replay_agree(desk)
