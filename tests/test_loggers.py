"""logger=mlflow and logger=wandb beside TensorBoard: a real 2-arm sweep through the CLI, its
runs read back with each tracker's own reader, nothing written outside the sweep dir and the
outputs root, nothing sent anywhere; and a missing package refused at planning."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST, kill_cli_once, run_cli

ARMS = ("lr_1e-4", "lr_3e-3")  # the demo preset's arms, one seed each
SUCCESS_METRIC = "eval/reversal/exact_match"


@contextlib.contextmanager
def network_trap() -> Iterator[tuple[dict, list]]:
    """A listener on localhost that every proxy and tracker server address points at: the
    environment to run with, and the connections it received (any is a network attempt)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    received: list = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                connection, address = server.accept()
                received.append(address)
                connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    env = {name: url for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "WANDB_BASE_URL")}
    env |= {"http_proxy": url, "https_proxy": url, "NO_PROXY": "", "no_proxy": ""}
    try:
        yield env, received
    finally:
        stop.set()
        thread.join()
        server.close()


def _sweep(tmp_path: Path, logger: str, env: dict, extra: tuple[str, ...] = ()):
    """The demo preset, shrunk: 2 arms x 1 seed, run from an empty cwd with its own HOME."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    args = ["+experiment=demo", "experiment.n_repeats=1", f"logger={logger}", *FAST, *extra]
    args += [
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"experiment.stores.outputs_root={tmp_path / 'out'}",
    ]
    done = run_cli([*args, "-m"], cwd=cwd, timeout=300, env={**env, "HOME": str(home)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home, cwd


def _nothing_outside(tmp_path: Path, home: Path, cwd: Path, name: str) -> None:
    """No file of the tracker's in the home dir or the cwd: only under sweep/ and out/."""
    strays = [
        path for where in (home, cwd) for path in where.rglob("*")
        if name in str(path.relative_to(where)).lower()
    ]  # fmt: skip
    assert strays == []
    assert not list(cwd.iterdir())


@pytest.mark.integration
def test_mlflow_has_one_experiment_with_a_run_per_arm_and_seed(tmp_path):
    pytest.importorskip("mlflow")
    with network_trap() as (env, received):
        # the benchmark scored during training too (step 2), not only after it (step 4)
        home, cwd = _sweep(tmp_path, "mlflow", env, ("validation.benchmarks_every_n_steps=2",))
    assert received == []  # no telemetry, no server
    _nothing_outside(tmp_path, home, cwd, "mlflow")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    plan = json.loads((tmp_path / "sweep" / "experiment.json").read_text())
    experiments = [e for e in client.search_experiments() if e.name != "Default"]
    assert [e.name for e in experiments] == [plan["id"]]  # one per evsys experiment
    runs = client.search_runs([experiments[0].experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"{arm}/seed0" for arm in ARMS]
    for run in runs:
        tags, arm = run.data.tags, run.info.run_name.split("/")[0]
        assert (tags["arm"], tags["seed"], tags["status"]) == (arm, "0", "completed")
        assert tags["sweep_dir"] == str(tmp_path / "sweep")
        assert tags["success_metric"] == SUCCESS_METRIC
        assert run.info.status == "FINISHED"
        record = json.loads((tmp_path / "sweep" / f"{arm}_seed0" / "result.json").read_text())
        assert run.data.metrics[SUCCESS_METRIC] == record["metrics"][SUCCESS_METRIC]
        assert run.data.params["algorithm.lr"] == str(record["hparams"]["algorithm.lr"])
        losses = client.get_metric_history(run.info.run_id, "train/loss")
        assert [m.step for m in losses] == [0, 1, 2, 3]  # every step once, as TensorBoard
        scores = client.get_metric_history(run.info.run_id, SUCCESS_METRIC)
        assert sorted(m.step for m in scores) == [2, 4]
    # TensorBoard is still written: the conclusion's curves read it
    assert (tmp_path / "sweep" / "tensorboard" / "lr_3e-3" / "seed0").is_dir()


@pytest.mark.integration
def test_a_killed_arm_resumes_in_its_own_mlflow_run(tmp_path):
    """Killed mid-training, then run again: the resumed arm goes on in the run the killed
    attempt opened, so MLflow still has one run for it, finished, with every step."""
    pytest.importorskip("mlflow")
    run_dir, outputs = tmp_path / "run", tmp_path / "out"
    args = [*FAST, "algorithm.max_steps=20", "checkpoint_every_n_steps=4", "logger=mlflow"]
    args += [f"hydra.run.dir={run_dir}", f"experiment.stores.outputs_root={outputs}"]
    kill_cli_once(args, tmp_path, run_dir / "checkpoints" / "last.ckpt")
    assert not (run_dir / "result.json").exists(), "killed too late to test resume"
    done = run_cli(args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((run_dir / "result.json").read_text())["resumed_from_step"] > 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{outputs / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("default").experiment_id])
    assert [(r.info.run_name, r.info.status, r.data.tags["status"]) for r in runs] == [
        ("default/seed0", "FINISHED", "completed")
    ]
    steps = {m.step for m in client.get_metric_history(runs[0].info.run_id, "train/loss")}
    assert {0, 19} <= steps


def wandb_records(path: Path) -> list:
    """The records of a W&B run file (`run-<id>.wandb`, LevelDB's log format: 32 KiB blocks
    of chunks, each a 7-byte header — crc, length, type — then a piece of one record) as
    W&B's own protobuf Records: what `wandb sync` uploads."""
    from wandb.proto.wandb_internal_pb2 import Record

    data, block, position = path.read_bytes(), 32768, 7  # after W&B's header (":W&B", version)
    assert data[:4] == b":W&B"
    records, pieces = [], []
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header: padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pieces.append(data[position + 7 : position + 7 + length])
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            records.append(Record.FromString(b"".join(pieces)))
            pieces = []
    return records


@pytest.mark.integration
def test_wandb_offline_writes_its_runs_under_the_sweep_dir_and_sends_nothing(tmp_path):
    pytest.importorskip("wandb")
    with network_trap() as (env, received):
        home, cwd = _sweep(tmp_path, "wandb", env)
    assert received == []  # no login, no upload, no error report
    _nothing_outside(tmp_path, home, cwd, "wandb")
    files = sorted((tmp_path / "sweep" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2  # one run per arm and seed
    plan = json.loads((tmp_path / "sweep" / "experiment.json").read_text())
    names = []
    for path in files:
        records = wandb_records(path)
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        names.append(run.display_name)
        assert run.run_group == plan["id"]
        config = {item.key: json.loads(item.value_json) for item in run.config.update}
        arm = run.display_name.split("/")[0]
        assert config["arm"] == arm and config["evsys"]["success_metric"] == SUCCESS_METRIC
        history = [
            {item.nested_key[0] if item.nested_key else item.key: json.loads(item.value_json)
             for item in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"
        ]  # fmt: skip
        assert [h["trainer/global_step"] for h in history if "train/loss" in h] == [0, 1, 2, 3]
        record = json.loads((tmp_path / "sweep" / f"{arm}_seed0" / "result.json").read_text())
        logged = {key: value for h in history for key, value in h.items()}
        assert logged[SUCCESS_METRIC] == record["metrics"][SUCCESS_METRIC]
    assert sorted(names) == [f"{arm}/seed0" for arm in ARMS]


@pytest.mark.parametrize(
    "kind, module", [("mlflow", "mlflow"), ("mlflow", "alembic"), ("wandb", "wandb")]
)
def test_a_missing_tracker_package_is_refused_at_planning(kind, module, monkeypatch, tmp_path):
    """As when the package is not installed (an import of it fails): refused with the extra
    to install, before any job runs."""
    from evsys.errors import ConfigError
    from evsys.sweep.plan import plan_arguments

    monkeypatch.setitem(sys.modules, module, None)  # Python's own "not importable"
    with pytest.raises(ConfigError) as refused:
        plan_arguments(["+experiment=demo", f"logger={kind}"], tmp_path / "sweep")
    message = str(refused.value)
    assert f"logger={kind} needs the {module} package" in message
    assert f'pip install -e ".[{kind}]"' in message and "\n" not in message
