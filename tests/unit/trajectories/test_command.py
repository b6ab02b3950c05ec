"""``rapport trajectories fit``: the model's shape, bad lines named by number and skipped, too
little data reported on stderr and in ``skipped``, the options, and the exit codes."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from rapport.cli import main as rapport
from rapport.trajectories.model import load_model
from shared.instruments import SHIPPED, load_instruments
from tests.support.trajectory_truth import KnownTrajectories

BASE = {
    "site_id": "site-a",
    "therapist_id": "th-1",
    "at": "2026-01-05T10:00:00Z",
    "respondent": "client",
}


def ors(total_tenths: int) -> dict[str, float]:
    base, rest = divmod(total_tenths, 4)
    keys = ("individually", "interpersonally", "socially", "overall")
    return {k: (base + (1 if i < rest else 0)) / 10 for i, k in enumerate(keys)}


def line(episode: str, session: int, total: float, **fields: Any) -> str:
    row = {
        **BASE,
        "episode_id": episode,
        "respondent_id": f"{episode}-c",
        "session": session,
        "instrument": "ors",
        "items": ors(round(total * 10)),
        **fields,
    }
    return json.dumps(row)


def run(
    tmp_path: Path, lines: list[str], *args: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any] | None, str]:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(x + "\n" for x in lines))
    out = tmp_path / "model.json"
    code = rapport(["trajectories", "fit", "--in", str(source), "--out", str(out), *args])
    model = json.loads(out.read_text()) if out.exists() else None
    return code, model, capsys.readouterr().err


def three_episodes() -> list[str]:
    return [line(f"ep-{i}", s, 20 + i + s) for i in range(3) for s in (1, 2)]


def test_the_model_has_the_contracts_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, model, _ = run(tmp_path, three_episodes(), "--min-episodes", "3", capsys=capsys)

    assert code == 0
    assert model is not None
    assert set(model) == {
        "version",
        "fitted_at",
        "min_episodes",
        "percentile_method",
        "smoothing",
        "data",
        "instruments",
        "skipped",
    }
    assert model["version"] == 1
    assert model["fitted_at"].endswith("Z")
    assert model["instruments"] == {
        "ors": {
            "band_width": 5.0,
            "bands": {
                "4": {
                    "sessions": {
                        "1": {
                            "n": 3,
                            "p10": 21.2,
                            "p25": 21.5,
                            "p50": 22.0,
                            "p75": 22.5,
                            "p90": 22.8,
                        },
                        "2": {
                            "n": 3,
                            "p10": 22.2,
                            "p25": 22.5,
                            "p50": 23.0,
                            "p75": 23.5,
                            "p90": 23.8,
                        },
                    }
                }
            },
        }
    }
    assert model["data"] == {
        "lines": 6,
        "records": 6,
        "bad_lines": 0,
        "records_fitted": 6,
        "episodes": 3,
        "instruments": {"ors": {"records": 6, "episodes": 3}},
    }
    assert model["skipped"] == []
    load_model((tmp_path / "model.json").read_text(), load_instruments(SHIPPED))


def test_bad_lines_are_named_by_number_and_skipped_and_the_rest_is_fitted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = three_episodes()
    lines[1:1] = [
        "this is not json",
        line("ep-9", 1, 20, instrument="core-34"),
        line("ep-9", 0, 20),
        line("ep-9", 1, 20, respondent="therapist"),
        json.dumps({"episode_id": "ep-9"}),
        line("ep-9", 1000, 20),
        '{"episode_id": "ep-9"} and more',
        line("ep-9", 1, 20, at="2026-01-05T10:00:00"),
    ]

    code, model, err = run(tmp_path, lines, "--min-episodes", "3", capsys=capsys)

    assert code == 0
    source = tmp_path / "in.jsonl"
    assert f"{source}:2: not JSON" in err
    assert f"{source}:3: unknown instrument 'core-34'" in err
    assert f"{source}:4: session must be an integer from 1, got 0" in err
    assert f"{source}:5: ors may not be answered by a therapist" in err
    assert f"{source}:6: missing field(s) site_id, therapist_id" in err
    assert f"{source}:7: session must be at most 999 to be fitted, got 1000" in err
    assert f"{source}:8: not JSON: extra data at column 23" in err
    assert f"{source}:9: at must carry a UTC offset" in err
    assert model is not None
    assert model["data"]["bad_lines"] == 8
    assert model["data"]["lines"] == 14
    assert model["instruments"]["ors"]["bands"]["4"]["sessions"]["2"]["n"] == 3


def test_too_few_episodes_are_reported_and_listed_and_the_rest_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = three_episodes() + [line("ep-0", 3, 25)] + [line(f"ep-l{i}", 1, 7) for i in range(2)]

    code, model, err = run(tmp_path, lines, "--min-episodes", "3", capsys=capsys)

    assert code == 0
    assert model is not None
    assert list(model["instruments"]["ors"]["bands"]["4"]["sessions"]) == ["1", "2"]
    assert model["skipped"] == [
        {"instrument": "ors", "band": 1, "session": 1, "n": 2},
        {"instrument": "ors", "band": 4, "session": 3, "n": 1},
    ]
    assert "2 with fewer than 3 episodes" in err
    assert "ors band 1: session 1 had fewer than 3 episodes (2); not fitted" in err
    assert "ors band 4: session 3 had fewer than 3 episodes (1); not fitted" in err


def test_a_fit_with_no_band_enough_writes_an_empty_model_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, model, err = run(tmp_path, three_episodes(), capsys=capsys)  # default 30

    assert code == 0
    assert model is not None
    assert model["instruments"] == {}
    assert len(model["skipped"]) == 2
    assert "ors band 4: sessions 1–2 had fewer than 30 episodes (3); not fitted" in err


def test_alliance_measures_and_other_respondents_are_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srs = {"relationship": 9.0, "goals": 9.0, "approach": 9.0, "overall": 9.0}
    lines = [
        *three_episodes(),
        line("ep-0", 2, 5, respondent="partner", respondent_id="ep-0-p"),
        line("ep-1", 2, 36, instrument="srs", items=srs),
    ]

    code, model, _ = run(tmp_path, lines, "--min-episodes", "3", capsys=capsys)

    assert code == 0
    assert model is not None
    assert set(model["instruments"]) == {"ors"}
    assert model["instruments"]["ors"]["bands"]["4"]["sessions"]["2"]["n"] == 3
    assert model["data"]["records"] == 8
    assert model["data"]["records_fitted"] == 6


def test_band_width_for_every_instrument_or_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--min-episodes", "1", "--band-width", "10", "--band-width", "phq-9=3")
    code, model, _ = run(tmp_path, three_episodes(), *args, capsys=capsys)

    assert code == 0
    assert model is not None
    assert model["instruments"]["ors"]["band_width"] == 10.0
    assert list(model["instruments"]["ors"]["bands"]) == ["2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--band-width", "0"), "must be a positive number of points, got 0"),
        (("--band-width", "ors=wide"), "not a number: 'wide'"),
        (("--min-episodes", "0"), "must be at least 1, got 0"),
    ],
)
def test_a_bad_option_value_stops_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        run(tmp_path, three_episodes(), *args, capsys=capsys)

    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_a_band_width_for_an_instrument_that_is_not_fitted_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, model, err = run(tmp_path, three_episodes(), "--band-width", "srs=5", capsys=capsys)

    assert code == 2
    assert model is None
    assert "--band-width srs=…: not an outcome instrument" in err


def test_an_input_that_cannot_be_opened_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = rapport(["trajectories", "fit", "--in", str(tmp_path / "none.jsonl"), "--out", "m"])

    assert code == 2
    assert "cannot open" in capsys.readouterr().err


def test_an_output_that_cannot_be_written_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(three_episodes()) + "\n")

    code = rapport(["trajectories", "fit", "--in", str(source), "--out", str(tmp_path)])

    assert code == 2
    assert "cannot write" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]  # no half-written model


def test_the_model_can_go_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(three_episodes()) + "\n")

    code = rapport(
        ["trajectories", "fit", "--in", str(source), "--out", "-", "--min-episodes", "3"]
    )

    assert code == 0
    model = load_model(capsys.readouterr().out, load_instruments(SHIPPED))
    assert model.instruments["ors"].bands["4"].sessions["2"].n == 3


def test_a_simulated_network_fits_every_band_it_started_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = KnownTrajectories(min_sessions=4, max_sessions=6)
    lines = list(truth.lines(random.Random(3), 40))

    code, model, _ = run(tmp_path, lines, capsys=capsys)

    assert code == 0
    assert model is not None
    assert sorted(model["instruments"]["ors"]["bands"], key=int) == ["1", "2", "3", "4", "5"]
    assert model["data"]["episodes"] == 200
