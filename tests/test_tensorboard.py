"""TensorBoard shows the experiment: one tree per sweep, a run per arm and seed named
<arm>/seed<n>, HParams rows with the swept key first and the success metric as the first
column, the train loss without Lightning's epoch counter, the conclusion as text and image."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from evsys.cli import conclude
from evsys.records import Plan, PlannedJob
from evsys.run.tensorboard import ordered_metrics, swept_keys, time_series_url
from tests.conftest import FAST, cli_env, run_cli

METRIC = "eval/reversal/exact_match"
RUNS = {"lr_1e-4/seed0", "lr_1e-4/seed1", "lr_3e-3/seed0", "lr_3e-3/seed1"}
BAND_RUNS = {
    f"{arm}/{name}" for arm in ("lr_1e-4", "lr_3e-3") for name in ("mean", "lower", "upper")
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tb")
    sweep_dir = root / "sweep"
    args = ["+experiment=demo", "experiment.n_repeats=2", *FAST, f"hydra.sweep.dir={sweep_dir}"]
    done = run_cli([*args, f"experiment.stores.outputs_root={root / 'out'}", "-m"], cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return sweep_dir


def hparams_data(run_dir: Path) -> dict[str, HParamsPluginData]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = events.PluginTagToContent("hparams")
    return {tag: HParamsPluginData.FromString(content) for tag, content in tags.items()}


@pytest.mark.integration
def test_one_run_per_arm_and_seed_in_the_sweep_tree(sweep):
    tree = sweep / "tensorboard"
    runs = {str(p.parent.relative_to(tree)) for p in tree.rglob("events.out.tfevents.*")}
    assert runs == RUNS | {"conclusion"} | BAND_RUNS
    record = json.loads((sweep / "lr_3e-3_seed1" / "result.json").read_text())
    assert record["artifacts"]["tensorboard"] == "../tensorboard/lr_3e-3/seed1"


@pytest.mark.integration
def test_hparams_rows_lead_with_the_swept_key_and_the_success_metric(sweep):
    for run in RUNS:
        data = hparams_data(sweep / "tensorboard" / run)
        experiment = data["_hparams_/experiment"].experiment
        names = [info.name for info in experiment.hparam_infos]
        assert names[:3] == ["algorithm.lr", "arm", "seed"] and len(names) <= 15
        assert [info.differs for info in experiment.hparam_infos][:4] == [True, True, True, False]
        assert {"algorithm.kind", "data.dataset_name", "model.arch"} <= set(names)
        assert experiment.metric_infos[0].name.tag == METRIC
        start = data["_hparams_/session_start_info"].session_start_info
        arm = run.split("/")[0]
        assert start.group_name == arm  # an arm's seeds are one row, aggregated
        assert start.hparams["arm"].string_value == arm
        lr = start.hparams["algorithm.lr"].number_value
        assert lr == pytest.approx(3e-3 if arm == "lr_3e-3" else 1e-4)


@pytest.mark.integration
def test_time_series_has_the_train_loss_and_no_epoch(sweep):
    events = EventAccumulator(str(sweep / "tensorboard" / "lr_3e-3" / "seed0"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert "train/loss" in scalars and METRIC in scalars
    assert "epoch" not in scalars


def scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {t: {e.step: e.value for e in events.Scalars(t)} for t in events.Tags()["scalars"]}


@pytest.mark.integration
def test_one_mean_run_per_arm_is_the_mean_of_its_seeds_at_each_step(sweep):
    for arm in ("lr_1e-4", "lr_3e-3"):
        seeds = [scalars(sweep / "tensorboard" / arm / f"seed{n}") for n in (0, 1)]
        mean, lower, upper = (
            scalars(sweep / "tensorboard" / arm / n) for n in ("mean", "lower", "upper")
        )
        assert set(mean) == {"train/loss", "val/loss"}  # the score is logged once: not a curve
        for tag, curve in mean.items():
            assert list(curve) == sorted(seeds[0][tag]) and len(curve) > 1
            for step, value in curve.items():
                seed_values = [seed[tag][step] for seed in seeds]
                assert value == pytest.approx(sum(seed_values) / 2, rel=1e-6)
                assert lower[tag][step] <= min(seed_values) <= max(seed_values) <= upper[tag][step]
    assert (sweep / "conclusion_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[conclusion_curves.png](conclusion_curves.png)" in (sweep / "conclusion.md").read_text()


@pytest.mark.integration
def test_a_run_shorter_than_the_logging_interval_logs_its_train_loss(tmp_path):
    # FAST logs every step; here the default interval (10) is longer than the run (4 steps)
    args = [arg for arg in FAST if not arg.startswith("log_every_n_steps=")]
    done = run_cli([*args, "hydra.run.dir=run"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("train/loss")) == 1  # the last step (Lightning counts from 0)


@pytest.mark.integration
def test_the_conclusion_run_has_text_and_plot(sweep):
    events = EventAccumulator(str(sweep / "tensorboard" / "conclusion"))
    events.Reload()
    assert "verdict/plot" in events.Tags()["images"]  # sorts after train/ in Time Series
    assert "conclusion/text_summary" in events.Tags()["tensors"]


@pytest.mark.integration
def test_tensorboard_server_lists_the_swept_key_for_every_arm(sweep):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        str(Path(sys.executable).parent / "tensorboard"),
        *("--logdir", str(sweep), "--host", "127.0.0.1", "--port", str(port)),
    ]
    server = subprocess.Popen(
        command, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        request = {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE"],
            "colParams": [
                {"hparam": "algorithm.lr"},
                {"hparam": "arm"},
                {"metric": {"tag": METRIC}},
            ],
            "startIndex": 0,
            "sliceSize": 100,
            "aggregationType": "AGGREGATION_AVG",
        }
        groups = _post_when_up(port, "session_groups", request)["sessionGroups"]
        experiment = _post_when_up(port, "experiment", {"experimentName": ""})
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert experiment["hparamInfos"][0]["name"] == "algorithm.lr"
    assert experiment["metricInfos"][0]["name"]["tag"] == METRIC
    by_arm = {group["name"]: group for group in groups}
    assert set(by_arm) == {"lr_1e-4", "lr_3e-3"}
    for group in by_arm.values():
        assert "algorithm.lr" in group["hparams"], group
        assert len(group["sessions"]) == 2  # both seeds


def _post_when_up(port: int, route: str, body: dict, timeout: float = 90) -> dict:
    url = f"http://127.0.0.1:{port}/data/plugin/hparams/{route}"
    deadline = time.time() + timeout
    while True:
        try:
            data = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", "X-TensorBoard-Feature-Flags": "{}"}
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.loads(response.read())
            if route != "session_groups" or len(answer.get("sessionGroups", [])) >= 2:
                return answer
        except OSError:
            pass
        if time.time() > deadline:
            raise AssertionError(f"no answer from TensorBoard at {url}")
        time.sleep(1)


def test_the_time_series_link_pins_the_train_loss_first():
    # the pinnedCards query TensorBoard's Time Series reads: cards shown above every group
    url = urllib.parse.urlsplit(time_series_url(6006))
    pins = json.loads(urllib.parse.parse_qs(url.query)["pinnedCards"][0])
    assert pins == [{"plugin": "scalars", "tag": "train/loss"}]
    assert url.fragment == "timeseries" and url.netloc == "localhost:6006"


@pytest.mark.integration
def test_conclude_says_how_to_open_the_sweep_in_tensorboard(sweep, capsys):
    assert conclude.main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert f"tensorboard --logdir {sweep / 'tensorboard'}, then open {time_series_url()}" in out


def test_swept_keys_and_metric_order():
    jobs = [
        PlannedJob("a", 0, ["algorithm.lr=0.1", "data=addition", "seed=0", "arm=a"], "a_seed0"),
        PlannedJob("a", 1, ["algorithm.lr=0.1", "data=addition", "seed=1", "arm=a"], "a_seed1"),
        PlannedJob("b", 0, ["algorithm.lr=0.2", "data=addition", "model=tiny", "arm=b"], "b_s0"),
    ]
    plan = Plan(id="x", name="x", success_metric={"name": METRIC}, planned=jobs)
    assert swept_keys(plan) == ["algorithm.lr", "model"]  # data is the same everywhere
    assert list(ordered_metrics({"val/loss": 1, METRIC: 0.5, "a": 2}, METRIC)) == [
        METRIC,
        "a",
        "val/loss",
    ]
