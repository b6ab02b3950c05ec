"""The site report's share of episodes below, on and above track: each episode's latest client
score against the model's 25–75 band for its starting band and session (ORS: below p25 is below
track; PHQ-9: above p75 is below track); an episode the model cannot place is not compared."""

from __future__ import annotations

from decimal import Decimal

from services.analytics.reports import TrackShares, site_report_html, track_html, track_shares
from tests.unit.analytics.test_episode_chart import INSTRUMENTS, summary
from tests.unit.analytics.test_rule_9_trajectories import model

# model: ORS band 3 p25 20, p75 28; PHQ-9 band 3 p25 6, p75 12 (sessions 1–8)


def _episode(name: str, instrument: str, first: str, latest: str, session: int = 4) -> list:
    return [(name, instrument, 1, Decimal(first)), (name, instrument, session, Decimal(latest))]


def test_episodes_are_placed_at_the_edges_of_the_middle_half() -> None:
    scores = [
        *_episode("a", "ors", "15.0", "20.0"),  # at p25: on
        *_episode("b", "ors", "15.0", "19.9"),  # below p25: below
        *_episode("c", "ors", "15.0", "28.0"),  # at p75: on
        *_episode("d", "ors", "15.0", "28.1"),  # above p75: above
        *_episode("e", "phq-9", "15", "13"),  # PHQ-9 above p75: below track
        *_episode("f", "phq-9", "15", "5"),  # PHQ-9 below p25: above track
        *_episode("g", "ors", "30.0", "20.0"),  # band 6: not in the model
        *_episode("h", "ors", "15.0", "20.0", session=12),  # session 12: not in the model
        ("i", "ors", 1, Decimal("15.0")),  # one score only
    ]

    shares = track_shares(scores, model().instruments, INSTRUMENTS)

    assert shares == TrackShares(below=2, on=2, above=2, not_compared=3)


def test_an_episode_is_placed_on_ors_before_phq9() -> None:
    scores = [*_episode("a", "phq-9", "15", "20"), *_episode("a", "ors", "15.0", "25.0")]

    assert track_shares(scores, model().instruments, INSTRUMENTS) == TrackShares(on=1)


def test_without_a_model_nothing_is_compared_and_the_report_says_so() -> None:
    shares = track_shares(_episode("a", "ors", "15.0", "20.0"), None, INSTRUMENTS)

    assert shares == TrackShares(not_compared=1)
    assert "No episode can be compared with expected trajectories yet" in track_html(shares)


def test_the_site_report_shows_the_shares() -> None:
    html = site_report_html(summary([], {}), [], TrackShares(below=1, on=2, above=1))

    assert "<h2>Episodes on track</h2>" in html
    assert "<td>below track (worse than the middle half)</td><td>1</td><td>25%</td>" in html
    assert "<td>on track (within the middle half)</td><td>2</td><td>50%</td>" in html
