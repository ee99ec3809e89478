"""`run_experiment` in a real Jupyter kernel (ipykernel): what a notebook cell shows has the
progress lines and the arm's summary, and no raw ANSI codes. Skipped where ipykernel and
jupyter_client are not installed (they are no dependency of evsys)."""

from __future__ import annotations

import pytest

from tests.conftest import FAST, cli_env

pytest.importorskip("ipykernel")
manager = pytest.importorskip("jupyter_client.manager")

CELL = """
from evsys import compose_run_config, run_experiment
record = run_experiment(compose_run_config({fast!r}), {job!r})
print("STATUS", record.status)
"""


def run_cell(code: str, timeout: float = 300) -> str:
    """The text a notebook shows for one cell: its stdout and stderr streams."""
    kernel, client = manager.start_new_kernel(kernel_name="python3", env=cli_env())
    try:
        msg_id = client.execute(code)
        shown = []
        while True:
            msg = client.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                shown.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                shown.append("\n".join(msg["content"]["traceback"]))
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(shown)
    finally:
        client.stop_channels()
        kernel.shutdown_kernel(now=True)


@pytest.mark.integration
def test_run_experiment_in_a_notebook_shows_progress_and_summary(tmp_path):
    shown = run_cell(CELL.format(fast=FAST, job=str(tmp_path / "arm")))
    assert "STATUS completed" in shown, shown[-3000:]
    assert "[default seed 0] step 4/4" in shown and "loss=" in shown
    assert "arm default seed 0 completed in" in shown
    assert "\x1b[" not in shown
