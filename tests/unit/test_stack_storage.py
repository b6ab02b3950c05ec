"""The local stack's Kafka keeps every topic the tests create; `rapport stack up` counts the
partitions on disk to decide when to start it empty (rapport/stack/kafka.py)."""

from __future__ import annotations

from pathlib import Path

from rapport.stack.kafka import partitions_on_disk


def test_partitions_on_disk_counts_partition_directories_only(tmp_path: Path) -> None:
    for name in ("rapport.feedback.recorded.v1-0", "rapport.feedback.recorded.v1-1", "x-5"):
        (tmp_path / name).mkdir()
    (tmp_path / "meta.properties").write_text("version=1\n")
    (tmp_path / "bootstrap.checkpoint").write_text("")

    assert partitions_on_disk(tmp_path) == 3


def test_a_missing_storage_directory_holds_no_partitions(tmp_path: Path) -> None:
    assert partitions_on_disk(tmp_path / "never-made") == 0
