"""The alert rules against a simulated network whose ruptures, repairs, splits, deteriorations,
risk answers, drop-outs and attendance are known (rapport.simulation): per-kind precision and
recall of the alerts that ``rapport replay`` opens must be at least 0.95 for every rule-defined
kind, and the attendance alerts (``missed_sessions``, ``no_contact``: the replay's clock) must be
exactly the simulator's labels, by the last line and with ``--as-of`` later, and so must the
goal and support alerts (``goals_not_progressing``, ``low_support``), whose labels are
definitional."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rapport import replay
from rapport.simulation import Network, simulate, write_jsonl

RULE_KINDS = (
    "risk",
    "low_alliance",
    "early_alliance_risk",
    "rupture",
    "unresolved_rupture",
    "split_alliance",
    "deterioration",
    "not_on_track",
)
# The goal and support rules' labels follow their definitions over the drawn ratings (rapport.
# simulation_goals): the replay must open exactly them.
DEFINITIONAL_KINDS = ("goals_not_progressing", "low_support")
ATTENDANCE_KINDS = ("missed_sessions", "no_contact")
EPISODE_LEVEL = {"split_alliance", "rating_discrepancy", *ATTENDANCE_KINDS}
Key = tuple[str, int, str, str | None]


def _key(episode: str, session: int, kind: str, respondent: str | None) -> Key:
    return (episode, session, kind, None if kind in EPISODE_LEVEL else respondent)


@pytest.fixture(scope="module")
def network() -> Network:
    return simulate(seed=11, episodes=400)


def _replayed(network: Network, folder: Path, *options: str) -> Counter[Key]:
    """The alerts ``rapport replay`` opens over the network's lines (sessions and
    questionnaires, with the sites' time zones)."""
    write_jsonl(network.lines(), folder / "lines.jsonl")
    zones = json.dumps(network.time_zones())
    out = folder / "alerts.jsonl"
    args = [str(folder / "lines.jsonl"), "--out", str(out), "--time-zones", zones, *options]
    assert replay.main(args) == 0
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    return Counter(
        _key(a["episode_id"], a["session"], a["kind"], a.get("respondent_id")) for a in alerts
    )


def _labelled(network: Network, as_of: datetime | None = None) -> Counter[Key]:
    return Counter(
        _key(x.episode_id, x.session, x.kind, x.respondent_id) for x in network.labels(as_of)
    )


@pytest.fixture(scope="module")
def scored(
    network: Network, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[float, float, int]]:
    found = _replayed(network, tmp_path_factory.mktemp("sim"))
    labelled = _labelled(network)
    result = {}
    for kind in RULE_KINDS:
        expected = Counter({k: n for k, n in labelled.items() if k[2] == kind})
        opened = Counter({k: n for k, n in found.items() if k[2] == kind})
        hits = sum((expected & opened).values())
        precision = hits / sum(opened.values()) if opened else 1.0
        recall = hits / sum(expected.values()) if expected else 1.0
        result[kind] = (precision, recall, sum(expected.values()))
    print("\nkind                  precision recall labels")
    for kind, (precision, recall, n) in result.items():
        print(f"{kind:22}{precision:9.3f}{recall:7.3f}{n:7}")
    return result


@pytest.mark.parametrize("kind", RULE_KINDS)
def test_rule_alerts_match_the_simulated_events(
    scored: dict[str, tuple[float, float, int]], kind: str
) -> None:
    precision, recall, labels = scored[kind]
    assert labels >= 10, f"the simulation produced too few {kind} events to judge"
    assert precision >= 0.95, f"{kind}: precision {precision:.3f}"
    assert recall >= 0.95, f"{kind}: recall {recall:.3f}"


@pytest.mark.parametrize("kind", (*ATTENDANCE_KINDS, *DEFINITIONAL_KINDS))
def test_the_replay_opens_exactly_the_simulated_clock_and_goal_alerts(
    network: Network, tmp_path: Path, kind: str
) -> None:
    found = _replayed(network, tmp_path)
    labelled = _labelled(network)

    expected = Counter({k: n for k, n in labelled.items() if k[2] == kind})
    assert sum(expected.values()) >= 15, f"the simulation produced too few {kind} events"
    assert Counter({k: n for k, n in found.items() if k[2] == kind}) == expected


def test_as_of_fires_the_checks_due_after_the_last_line(network: Network, tmp_path: Path) -> None:
    last = max(datetime.fromisoformat(line["at"]) for line in network.lines())
    as_of = (last + timedelta(days=30)).astimezone(UTC)
    found = _replayed(network, tmp_path, "--as-of", as_of.isoformat())
    labelled = _labelled(network, as_of)

    silent = Counter({k: n for k, n in labelled.items() if k[2] == "no_contact"})
    assert sum(silent.values()) > sum(
        n for k, n in _labelled(network).items() if k[2] == "no_contact"
    )
    assert Counter({k: n for k, n in found.items() if k[2] == "no_contact"}) == silent


def test_the_same_seed_writes_the_same_records_in_every_process(tmp_path: Path) -> None:
    """Deterministic by seed, whatever the process: Python's string hash is salted per process
    (PYTHONHASHSEED), so nothing in the records may depend on it."""
    script = (
        "import sys; from pathlib import Path; "
        "from rapport.simulation import simulate, write_jsonl; "
        "write_jsonl(simulate(seed=5, episodes=20).lines(), Path(sys.argv[1]))"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"records-{hash_seed}.jsonl"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
