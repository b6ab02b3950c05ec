"""docs/integration.md works as written: its shell blocks, run in order by bash against a fresh
``rapport serve all --embedded``, succeed at every request (CSV imports, intake and confirm,
JSON and FHIR feedback, alerts, acknowledgement, chart, webhooks, policy, undelivered), and the
webhooks reach the document's receiver with signatures that ``standardwebhooks`` verifies."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.doc_flow import (
    ROOT,
    clean_env,
    embedded_api,
    free_port,
    running_script,
    shell_blocks,
    wait_for,
)

DOC = ROOT / "docs" / "integration.md"
MARKER = "<!-- tests/unit/test_integration_doc.py runs the ```sh blocks of this file"
DOC_API = "127.0.0.1:8000"
DOC_RECEIVER = ("127.0.0.1:9000", '("127.0.0.1", 9000)')


def test_the_integration_guide_runs_as_written(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert MARKER in text
    script = "\n".join(shell_blocks(text))
    assert DOC_API in script and all(r in script for r in DOC_RECEIVER)
    assert f"serve all --embedded --port {DOC_API.rsplit(':', 1)[1]}" in text
    port = free_port()
    env = clean_env()
    with embedded_api(tmp_path, env) as (address, serve_log):
        script = script.replace(DOC_API, address).replace(DOC_RECEIVER[0], f"127.0.0.1:{port}")
        script = script.replace(DOC_RECEIVER[1], f'("127.0.0.1", {port})')
        with running_script(tmp_path, env, script):
            out = (tmp_path / "out").read_text()
            assert '"created":2' in out.replace(" ", "")  # the registry CSV, then the list
            assert '"dry_run":true' in out.replace(" ", "")
            assert re.search(r"^risk urgent open$", out, re.M), out
            assert "th-1" in out  # the risk acknowledged by the therapist
            assert (tmp_path / "episode.svg").read_text().lstrip().startswith("<")
            hooks = tmp_path / "hooks.log"

            def risk_verified() -> bool:
                return (
                    hooks.exists()
                    and re.search(r'^verified .*"urgent":\s*true', hooks.read_text(), re.M)
                    is not None
                )

            wait_for(risk_verified, "the verified risk webhook")
        assert "dead-lettered" not in serve_log.read_text()
