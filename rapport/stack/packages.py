"""What the stack installs: OS packages with apt-get (only as root), a Java runtime, and
Kafka's jars, which Maven resolves from ``deploy/stack/kafka-pom.xml`` into the download
cache once per version of that file."""

from __future__ import annotations

import hashlib
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Final

from rapport.stack.config import REPO_ROOT, cache_dir
from rapport.stack.errors import StackError
from rapport.stack.processes import is_root, run_logged

KAFKA_POM: Final = REPO_ROOT / "deploy" / "stack" / "kafka-pom.xml"

_APT_UPDATED = False


def apt_install(state: Path, *packages: str) -> None:
    """``apt-get install`` the packages (``apt-get update`` first, once per process)."""
    if not is_root():
        raise StackError(f"missing {', '.join(packages)}: install it (apt-get install -y ...)")
    if shutil.which("apt-get") is None:
        raise StackError(f"missing {', '.join(packages)} and no apt-get to install it with")
    log = state / "apt.log"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    global _APT_UPDATED
    if not _APT_UPDATED:
        run_logged("apt-get update", ["apt-get", "update"], log, env=env, timeout=600)
        _APT_UPDATED = True
    run_logged(
        f"apt-get install {' '.join(packages)}",
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
        log,
        env=env,
        timeout=900,
    )


def on_path_or_installed(state: Path, command: str, package: str) -> str:
    """The path of ``command``: the one on PATH, else the one ``package`` installs."""
    found = shutil.which(command)
    if found is None:
        apt_install(state, package)
        found = shutil.which(command)
    if found is None:
        raise StackError(f"{command} not found even after apt-get install {package}")
    return found


def java(state: Path) -> str:
    """The ``java`` to run Kafka with: ``$JAVA_HOME``'s, else the one on PATH, else the one
    default-jre-headless installs."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return on_path_or_installed(state, "java", "default-jre-headless")


def _maven(state: Path) -> str:
    if shutil.which("mvn") is None:
        java(state)  # Maven runs on the Java runtime: make sure of it first
    return on_path_or_installed(state, "mvn", "maven")


def kafka_version() -> str:
    """The Kafka version ``deploy/stack/kafka-pom.xml`` pins (its ``kafka.version``)."""
    try:
        root = ET.parse(KAFKA_POM).getroot()
    except (OSError, ET.ParseError) as exc:
        raise StackError(f"cannot read {KAFKA_POM}: {exc}") from None
    for el in root.iter():
        if el.tag.endswith("}kafka.version") or el.tag == "kafka.version":
            if el.text and el.text.strip():
                return el.text.strip()
    raise StackError(f"no <kafka.version> property in {KAFKA_POM}")


def kafka_libs(state: Path) -> Path:
    """The libs dir holding Kafka and its runtime jars, resolved with Maven once."""
    version = kafka_version()
    pom_digest = hashlib.sha256(KAFKA_POM.read_bytes()).hexdigest()
    home = cache_dir() / f"kafka-{version}"
    libs = home / "libs"
    marker = home / "complete"
    if libs.is_dir() and marker.is_file() and marker.read_text().strip() == pom_digest:
        return libs
    mvn = _maven(state)
    tmp = home / "libs.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    log = state / "maven.log"
    run_logged(
        f"resolving Kafka {version} jars with Maven",
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(KAFKA_POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
        ],
        log,
        timeout=1800,
    )
    if not any(tmp.glob(f"kafka_2.13-{version}.jar")):
        raise StackError(f"Maven finished but kafka_2.13-{version}.jar is missing; read {log}")
    shutil.rmtree(libs, ignore_errors=True)
    marker.unlink(missing_ok=True)
    tmp.rename(libs)
    marker.write_text(pom_digest + "\n")
    return libs
