"""The expected-trajectories model analytics uses for rule 9 (docs/trajectories.md): read from
``RAPPORT_TRAJECTORIES_FILE`` at start, and again whenever the file changes (checked at most
once every ``RECHECK_SECONDS``), so a refit takes effect without a restart:

    rapport trajectories fit --in records.jsonl --out model.json.new
    mv model.json.new "$RAPPORT_TRAJECTORIES_FILE"      # atomic: never half a file

A model is checked against the deployment's instruments (:func:`load_model`). At start a bad
file stops the service with the setting's name and the faults; later, a bad file is refused
with the same faults in the log and the model already loaded stays in use. Each model is
known by its *version*: the first 12 hex digits of the SHA-256 of its bytes, logged with its
fitting time and counts when it is loaded. Alerts already opened are never touched by a new
model: it applies from the next record on."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rapport.trajectories.model import ModelRefused, TrajectoryModel, load_model
from services.analytics.domain import Trajectories
from shared.instruments import Instrument
from shared.logs import get_logger

log = get_logger(__name__)

RECHECK_SECONDS = 5.0


@dataclass(frozen=True)
class LoadedModel:
    version: str
    model: TrajectoryModel
    signature: tuple[int, int]  # the file's (modification time in ns, size) when read


def read_model(path: Path, instruments: Mapping[str, Instrument]) -> LoadedModel:
    """Read and check a model file; raises :class:`ModelRefused` (or ``OSError``)."""
    stat = path.stat()
    data = path.read_bytes()
    model = load_model(data, instruments)
    version = hashlib.sha256(data).hexdigest()[:12]
    return LoadedModel(version, model, (stat.st_mtime_ns, stat.st_size))


class CurrentModel:
    """The model in use (None: no file configured, rule 9's fallback everywhere)."""

    def __init__(
        self,
        path: str | None,
        instruments: Mapping[str, Instrument],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path) if path else None
        self.instruments = instruments
        self.clock = clock
        self.loaded: LoadedModel | None = None
        self.checked_at = 0.0
        if self.path is not None:
            self.loaded = read_model(self.path, instruments)  # a bad file stops the start
            self.checked_at = clock()
            _log_loaded(self.loaded)

    @property
    def version(self) -> str | None:
        return None if self.loaded is None else self.loaded.version

    def trajectories(self) -> Trajectories | None:
        """The current model's trajectories, re-reading the file if it changed."""
        if self.path is not None and self.clock() - self.checked_at >= RECHECK_SECONDS:
            self.reload()
        return None if self.loaded is None else self.loaded.model.instruments

    def reload(self) -> None:
        """Read the file again if it changed; keep the current model if the new one is bad."""
        assert self.path is not None
        self.checked_at = self.clock()
        try:
            stat = self.path.stat()
            if self.loaded is not None and self.loaded.signature == (
                stat.st_mtime_ns,
                stat.st_size,
            ):
                return
            fresh = read_model(self.path, self.instruments)
        except (OSError, ModelRefused) as error:
            log.error(
                "trajectory model refused; the previous model stays in use",
                reason=str(error),
                kept_version=self.version,
            )
            return
        if self.loaded is None or fresh.version != self.loaded.version:
            _log_loaded(fresh)
        self.loaded = fresh


def _log_loaded(loaded: LoadedModel) -> None:
    log.info(
        "trajectory model loaded",
        version=loaded.version,
        fitted_at=loaded.model.fitted_at.isoformat(),
        episodes=loaded.model.data.episodes,
        instruments=sorted(loaded.model.instruments),
    )
