"""Per-site matching weights come from RAPPORT_MATCHING_FILE; a bad file stops start-up with
one line naming the variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import services
from services.intake.dependencies import IntakeDependencies
from shared.host import Host
from shared.runtime import dependencies_of
from shared.settings import Settings, SettingsError


def test_site_weights_are_loaded_from_the_matching_file(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "matching.json"
    path.write_text(json.dumps({"sites": {"site-b": {"weights": {"effectiveness": 9}}}}))
    settings = embedded_settings.model_copy(update={"matching_file": str(path)})
    host = Host(settings, services.definitions(["intake"]), embedded=True)
    matching = dependencies_of(host.runtimes["intake"], IntakeDependencies).matching
    assert matching.for_site("site-b").weights.effectiveness == 9
    assert matching.for_site("site-a").weights.effectiveness != 9


def test_a_bad_matching_file_names_the_variable(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "matching.json"
    path.write_text(json.dumps({"sites": {"site-b": {"weights": {"effectiveness": "lots"}}}}))
    settings = embedded_settings.model_copy(update={"matching_file": str(path)})
    with pytest.raises(SettingsError) as caught:
        Host(settings, services.definitions(["intake"]), embedded=True)
    assert str(caught.value).startswith("RAPPORT_MATCHING_FILE:")
