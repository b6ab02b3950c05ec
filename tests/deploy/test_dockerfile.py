"""deploy/Dockerfile, parsed and checked without a Docker engine: multi-stage, a slim non-root
final stage without compilers, a Python (not curl) HEALTHCHECK on /healthz, OCI labels, and an
entrypoint that is the project's `rapport` console script with a valid default command.
(tests/deploy/test_serve.py runs that command against the real stack.)"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from rapport.cli import build_parser
from tests.deploy.chart import DEPLOY, REPO

DOCKERFILE = DEPLOY / "Dockerfile"
IGNORE = DEPLOY / "Dockerfile.dockerignore"
COMPILERS = re.compile(
    r"\b(gcc|g\+\+|clang|cc|make|build-essential|libc6-dev|python3?-dev|rustc|cargo)\b"
)
OCI_LABELS = {
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
    "org.opencontainers.image.source",
    "org.opencontainers.image.licenses",
}


@pytest.fixture(scope="module")
def parsed() -> DockerfileParser:
    return DockerfileParser(path=str(DOCKERFILE))


def stages(parsed: DockerfileParser) -> list[list[dict[str, Any]]]:
    result: list[list[dict[str, Any]]] = []
    for instruction in parsed.structure:
        if instruction["instruction"] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def instructions(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == name]


def test_multi_stage_with_a_slim_python_311_base(parsed: DockerfileParser) -> None:
    assert parsed.is_multistage
    all_stages = stages(parsed)
    assert len(all_stages) >= 2
    assert all(image.startswith("python:3.11-slim") for image in parsed.parent_images)
    final = all_stages[-1]
    copies = instructions(final, "COPY")
    assert copies == ["--from=build /opt/rapport /opt/rapport"], copies


def test_final_stage_runs_as_non_root(parsed: DockerfileParser) -> None:
    final = stages(parsed)[-1]
    (user,) = instructions(final, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) == 10001, "numeric non-root uid (runAsNonRoot can verify it)"
    assert gid == "10001"
    # The chart's securityContext agrees.
    values = (DEPLOY / "helm" / "rapport" / "values.yaml").read_text()
    assert "runAsUser: 10001" in values and "fsGroup: 10001" in values


def test_no_compilers_or_package_installs_in_the_final_stage(parsed: DockerfileParser) -> None:
    final = stages(parsed)[-1]
    for command in instructions(final, "RUN"):
        assert "apt-get install" not in command and "apk add" not in command, command
        assert not COMPILERS.search(command), command
        assert "pip install" not in command, command
    # Nor in the build stage: binary wheels only, so the build needs no compiler either.
    build = stages(parsed)[0]
    runs = " ".join(instructions(build, "RUN"))
    assert not COMPILERS.search(runs.replace("compileall", "")), runs
    assert "--only-binary=:all:" in runs and "-c requirements.lock" in runs


def test_healthcheck_uses_python_on_healthz(parsed: DockerfileParser) -> None:
    final = stages(parsed)[-1]
    (healthcheck,) = instructions(final, "HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command.strip())
    assert argv[:2] == ["python", "-c"]
    assert "/healthz" in argv[2] and "curl" not in healthcheck and "wget" not in healthcheck
    ast.parse(argv[2])  # valid Python


def test_oci_labels(parsed: DockerfileParser) -> None:
    labels = parsed.labels
    assert OCI_LABELS <= set(labels), OCI_LABELS - set(labels)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert labels["org.opencontainers.image.version"] == pyproject["version"]
    assert labels["org.opencontainers.image.licenses"] == pyproject["license"]["text"]


def test_entrypoint_is_the_rapport_console_script(parsed: DockerfileParser) -> None:
    final = stages(parsed)[-1]
    (entrypoint,) = instructions(final, "ENTRYPOINT")
    (cmd,) = instructions(final, "CMD")
    assert json.loads(entrypoint) == ["rapport"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["rapport"] == "rapport.cli:main"
    default = json.loads(cmd)
    assert default == ["serve", "intake"]
    # Every command the chart runs parses with the real CLI.
    parser = build_parser()
    for argv in (default, ["serve", "feedback"], ["serve", "analytics"], ["serve", "notify"]):
        assert parser.parse_args(argv).service == argv[1]
    assert parser.parse_args(["migrate"]).command == "migrate"
    env = " ".join(instructions(final, "ENV"))
    assert "RAPPORT_HTTP_HOST=0.0.0.0" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    assert "/opt/rapport/bin" in env


def test_copied_sources_exist_and_are_in_the_build_context(parsed: DockerfileParser) -> None:
    ignore = [
        line.strip()
        for line in IGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    included = [p[1:].rstrip("/") for p in ignore if p.startswith("!")]
    for stage in stages(parsed):
        for copy in instructions(stage, "COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _ = copy.split()
            for source in sources:
                assert (REPO / source).exists(), source
                assert any(fnmatch.fnmatch(source, p) for p in included), source
    assert ignore[0] == "**", "the context starts empty and lists what goes in"


def test_dependency_list_step_matches_pyproject(parsed: DockerfileParser) -> None:
    """The build stage's inline Python (which lists the runtime dependencies to install from
    the lock file) runs and yields exactly pyproject's dependencies."""
    build = " ".join(instructions(stages(parsed)[0], "RUN"))
    match = re.search(r'python -c "(.+?)" > /tmp/requirements.in', build)
    assert match, build
    output = subprocess.run(
        [sys.executable, "-c", match.group(1)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert output.splitlines() == expected
    assert all(not d.startswith(("pytest", "mypy", "ruff")) for d in expected)


def test_install_uses_pinned_versions_of_every_dependency() -> None:
    lock = {
        re.split(r"[=<>\[]", line)[0].lower().replace("_", "-")
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    }
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dependency in project:
        name = re.split(r"[=<>\[ ;]", dependency)[0].lower().replace("_", "-")
        assert name in lock, f"{name} is not pinned in requirements.lock"


def test_pip_apt_and_the_local_stack_are_left_out(parsed: DockerfileParser) -> None:
    """What make image-test asserts from inside a running container, kept true in every build:
    the virtualenv loses pip/setuptools and rapport/stack/, the final stage purges apt and
    the base's own pip, and the proxy CA for pip is a build secret, not a layer."""
    build, final = stages(parsed)[0], stages(parsed)[-1]
    build_runs = instructions(build, "RUN")
    app = build_runs[-1]
    assert "rm -r /opt/rapport/lib/python3*/site-packages/rapport/stack" in app, app
    assert app.rstrip().endswith("-m pip uninstall --yes --quiet pip setuptools"), app
    assert all(run.startswith("--mount=type=secret,id=ca-bundle ") for run in build_runs)
    final_runs = " ".join(instructions(final, "RUN"))
    assert "dpkg --purge apt libapt-pkg6.0" in final_runs
    assert (
        "pip uninstall --yes --quiet --root-user-action=ignore pip setuptools wheel" in final_runs
    )
    assert "secret" not in final_runs and "ca-bundle" not in " ".join(
        i["value"] for i in final if i["instruction"] in ("COPY", "ENV", "ARG")
    )
