"""The README's curl flow works as written: its shell blocks, run in order by bash against a fresh
``rapport serve all --embedded`` started as the README says, succeed at every request, and the
risk reaches the site's webhook with nothing dead-lettered."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.doc_flow import (
    ROOT,
    clean_env,
    embedded_api,
    free_port,
    running_script,
    shell_blocks,
    wait_for,
)

SECTION = re.compile(r"^### 2\. .*?(?=^### 3\. )", re.S | re.M)
MARKER = "<!-- tests/unit/test_readme_flow.py runs the shell blocks of this section"
README_API = "127.0.0.1:8000"
README_RECEIVER = ("127.0.0.1:9000", '("127.0.0.1", 9000)')  # its URL, and where it listens
README_SERVE = "RAPPORT_ALLOW_PRIVATE_WEBHOOKS=true .venv/bin/rapport serve all --embedded"


def readme_flow() -> tuple[str, str]:
    """The command that starts the API and the flow's script, as the README has them."""
    section = SECTION.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert section, "README.md has no step 2 followed by a step 3"
    text = section.group(0)
    assert MARKER in text, "the flow's blocks are no longer marked for this test"
    start, _, flow = text.partition(MARKER)
    serve = shell_blocks(start)[-1].strip()
    script = "\n".join(shell_blocks(flow))
    assert README_API in script and all(r in script for r in README_RECEIVER)
    return serve, script


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    serve, _ = readme_flow()
    assert serve == f"{README_SERVE} --port 8000", serve
    with embedded_api(tmp_path, clean_env()) as started:
        yield started


def test_the_readme_curl_flow_delivers_the_risk_to_the_sites_webhook(
    tmp_path: Path, api: tuple[str, Path]
) -> None:
    address, serve_log = api
    _, script = readme_flow()
    port = free_port()
    script = script.replace(README_API, address)
    script = script.replace(README_RECEIVER[0], f"127.0.0.1:{port}")
    script = script.replace(README_RECEIVER[1], f'("127.0.0.1", {port})')
    with running_script(tmp_path, clean_env(), script):
        out, err = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
        assert "Meets every hard constraint" in err  # the first option's explanation
        assert "rupture high open" in out
        hooks = tmp_path / "hooks.log"

        def risk_delivered() -> bool:
            return hooks.exists() and re.search(r'"urgent":\s*true', hooks.read_text()) is not None

        wait_for(risk_delivered, "the risk webhook")
        urgent = [x for x in hooks.read_text().splitlines() if re.search(r'"urgent":\s*true', x)]
        assert len(urgent) == 1 and re.search(r'"kind":\s*"risk"', urgent[0]), urgent
    assert "dead-lettered" not in serve_log.read_text()
