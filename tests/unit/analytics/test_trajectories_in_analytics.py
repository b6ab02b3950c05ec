"""Analytics with an expected-trajectories model (RAPPORT_TRAJECTORIES_FILE): the live service
(embedded) and ``rapport replay --trajectories`` open and resolve the same alerts for the same
records; a bad model stops the start with the setting's name, and a bad refit is refused while
the model already loaded stays in use."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rapport import replay
from services.analytics.dependencies import build
from services.analytics.trajectory_model import CurrentModel
from shared.settings import Settings, SettingsError
from tests.support.feedback import FeedbackDesk, feedback_desk
from tests.support.waiting import eventually
from tests.unit.analytics.builders import INSTRUMENTS, items_for
from tests.unit.analytics.test_rule_9_trajectories import model

ORS_SERIES = ("15.0", "16.0", "19.0", "19.0", "22.0", "19.0", "19.0")  # open 4, resolve 5, open 7
PHQ_SERIES = (15, 14, 13, 13, 12)  # above p75 (12) at 3 and 4: open 4; at the line at 5: resolve


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.json"
    path.write_text(model().model_dump_json())
    return path


@pytest.fixture
async def desk(embedded_settings: Settings, model_file: Path) -> AsyncIterator[FeedbackDesk]:
    settings = embedded_settings.model_copy(update={"trajectories_file": str(model_file)})
    async with feedback_desk(settings, ("intake", "feedback", "analytics")) as opened:
        yield opened


def _answers(instrument: str, total: Any) -> dict[str, Any]:
    return {k: float(v) for k, v in items_for(instrument, total).items()}


async def _record_all(desk: FeedbackDesk) -> tuple[str, list[dict[str, Any]]]:
    episode_id = await desk.open_episode()
    lines = []
    answers = [
        (session, instrument, total)
        for instrument, series in (("ors", ORS_SERIES), ("phq-9", PHQ_SERIES))
        for session, total in enumerate(series, start=1)
    ]
    for session, instrument, total in sorted(answers, key=lambda a: a[0]):  # in session order
        items = _answers(instrument, total)
        answered = await desk.http.post(
            "/feedback/responses",
            headers=desk.auth("therapist"),
            json={
                "episode_id": episode_id,
                "session_number": session,
                "respondent_role": "client",
                "instrument": instrument,
                "items": items,
            },
        )
        assert answered.status_code == 201, answered.text
        lines.append(
            {
                "episode_id": episode_id,
                "site_id": "site-a",
                "therapist_id": "th-1",
                "session": session,
                "at": f"2026-01-{session:02d}T10:00:00+00:00",
                "respondent": "client",
                "respondent_id": "client-1",
                "instrument": instrument,
                "items": items,
            }
        )
    return episode_id, lines


def _replayed(lines: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    out = io.StringIO()
    replay.replay_lines(
        [json.dumps(line) for line in lines],
        INSTRUMENTS,
        out.write,
        include_resolved=True,
        trajectories=model().instruments,
    )
    opened: dict[tuple[Any, ...], Any] = {}
    for line in map(json.loads, out.getvalue().splitlines()):
        if line["kind"] in ("not_on_track", "deterioration"):
            key = (line["kind"], line["instrument"], line.get("opened_session", line["session"]))
            opened[key] = line["session"] if line["status"] == "resolved" else None
    return {(*key, resolved) for key, resolved in opened.items()}


async def test_the_service_and_replay_open_the_same_alerts_with_the_model(
    desk: FeedbackDesk,
) -> None:
    await service_and_replay_agree(desk)


async def service_and_replay_agree(desk: FeedbackDesk) -> None:
    """Record the ORS and PHQ-9 series through the services; analytics (with the test model
    as RAPPORT_TRAJECTORIES_FILE) opens and resolves what the replay does."""
    episode_id, lines = await _record_all(desk)

    async def read() -> dict[str, Any]:
        got = await desk.http.get(
            f"/analytics/episodes/{episode_id}/timeline", headers=desk.auth("clinical_lead")
        )
        body: dict[str, Any] = got.json()
        return body

    async def scored() -> bool:
        return len((await read()).get("scores", [])) == len(lines)

    await eventually(scored, what="analytics to score every response")
    body = await read()
    live = {
        (a["kind"], a["instrument"], a["opened_session"], a["resolved_session"])
        for a in body["alerts"]
        if a["kind"] in ("not_on_track", "deterioration")
    }
    assert live == _replayed(lines)
    assert ("not_on_track", "ors", 7, None) in live  # the model's rule, not the fallback's
    assert ("not_on_track", "phq-9", 4, 5) in live


def test_replay_command_reads_the_model_and_refuses_a_bad_one(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text(
        "".join(
            json.dumps(
                {
                    "episode_id": "ep-1",
                    "site_id": "site-a",
                    "therapist_id": "th-1",
                    "session": session,
                    "at": None,
                    "respondent": "client",
                    "respondent_id": "c-1",
                    "instrument": "ors",
                    "items": _answers("ors", total),
                }
            )
            + "\n"
            for session, total in enumerate(ORS_SERIES, start=1)
        )
    )
    out = tmp_path / "alerts.jsonl"
    assert replay.main([str(records), "--out", str(out), "--trajectories", str(model_file)]) == 0
    opened = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(a["kind"], a["session"]) for a in opened if a["kind"] == "not_on_track"] == [
        ("not_on_track", 4),
        ("not_on_track", 7),
    ]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "instruments": {"srs": {}}}))
    assert replay.main([str(records), "--trajectories", str(bad)]) == 2
    assert "trajectory model refused" in capsys.readouterr().err


def test_a_bad_model_file_stops_the_start_naming_the_setting(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    bad = tmp_path / "model.json"
    text = model().model_dump_json().replace('"phq-9"', '"no-such-instrument"')
    bad.write_text(text)
    settings = embedded_settings.model_copy(update={"trajectories_file": str(bad)})

    class Runtime:
        pass

    runtime: Any = Runtime()
    runtime.settings = settings
    with pytest.raises(SettingsError) as refused:
        build(runtime)
    assert str(refused.value).startswith("RAPPORT_TRAJECTORIES_FILE: trajectory model refused")
    assert "instruments.no-such-instrument: not an instrument of this deployment" in str(
        refused.value
    )


def test_a_refit_is_used_and_a_bad_one_refused_keeping_the_model_in_use(model_file: Path) -> None:
    now = [0.0]
    current = CurrentModel(str(model_file), INSTRUMENTS, clock=lambda: now[0])
    first = current.version
    assert first is not None and current.trajectories() is not None

    refit = json.loads(model_file.read_text())
    del refit["instruments"]["phq-9"]
    model_file.write_text(json.dumps(refit))
    now[0] += 10
    trajectories = current.trajectories()
    assert trajectories is not None and set(trajectories) == {"ors"}
    assert current.version not in (None, first)
    refit_version = current.version

    model_file.write_text('{"version": 2}')
    now[0] += 10
    trajectories = current.trajectories()
    assert trajectories is not None and set(trajectories) == {"ors"}
    assert current.version == refit_version
