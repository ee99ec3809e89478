"""The `evsys` command: subcommands, help, tab completion, and a start-up that never loads
the training stack for help, config checks or the registry."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from evsys import registry
from evsys.cli import conclude, experiments, quick
from evsys.cli.main import COMMANDS, main
from tests.conftest import REPO, cli_env
from tests.test_conclusion import write_sweep

HEAVY = ("torch", "lightning", "transformers", "scipy", "matplotlib", "datasets")
# Runs `evsys ARGV` in a fresh interpreter and reports the exit code, the heavy modules it
# imported and how long it took, whatever way it exits (Hydra ends with sys.exit).
PROBE = f"""
import json, sys, time
start = time.perf_counter()
code = 0
try:
    if sys.argv[1] == "--import":
        __import__(sys.argv[2])
    else:
        from evsys.cli.main import main
        code = main(sys.argv[1:])
except SystemExit as exit_:
    code = exit_.code
heavy = [name for name in {HEAVY!r} if name in sys.modules]
print("PROBE" + json.dumps({{"code": code, "heavy": heavy, "s": time.perf_counter() - start}}),
      file=sys.stderr)
"""


def probe(*argv: str, cwd=None, env=None) -> tuple[dict, str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=cwd or REPO,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = next(line for line in proc.stderr.splitlines() if line.startswith("PROBE"))
    return json.loads(line[len("PROBE") :]), proc.stdout + proc.stderr


def test_console_script_is_declared():
    pyproject = (REPO / "pyproject.toml").read_text()
    scripts = pyproject.split("[project.scripts]\n", 1)[1].split("\n[", 1)[0]
    assert 'evsys = "evsys.cli.main:main"' in scripts


def test_help_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("train", "run", "conclude", "experiments"):
        assert f"  {command}" in out
    assert main(["nonsense"]) == 2
    assert "unknown command 'nonsense'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ("--import", "evsys.config"),
        ("--import", "evsys.validate"),
        ("--import", "evsys.compose"),
        ("--import", "evsys.cli.train"),
        ("--help",),
        ("train", "--help"),
        ("run", "--help"),
        ("conclude", "--help"),
        ("experiments", "--root", "nowhere"),
    ],
)
@pytest.mark.integration
def test_light_paths_do_not_import_the_training_stack(tmp_path, argv):
    result, output = probe(*argv, cwd=tmp_path)
    assert result["code"] == 0, output
    assert result["heavy"] == [], f"{argv} imported {result['heavy']}"


@pytest.mark.integration
def test_run_takes_the_concept_pages_file_with_sweep_overrides(tmp_path):
    # -m as with `evsys train`; the comma override is one more axis: 2 arms x 2 x 2 seeds
    argv = ("run", str(REPO / "examples/runs.yaml"), "-m", "algorithm.max_steps=3,4")
    argv += ("validation.every_n_steps=3",)  # val/loss, the success metric, is then logged
    result, output = probe(*argv, "--dry-run", "--sweep-dir", str(tmp_path / "sweep"))
    assert result["code"] == 0, output
    assert "8 of 8 jobs to run" in output and "lr_3e-3,max_steps=4" in output
    assert not list(tmp_path.rglob("result.json"))  # a dry run trains nothing
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nruns: [{name: a}, {name: b, algorithm: {lerning_rate: 1}}]\n")
    result, output = probe("run", str(bad), cwd=tmp_path)
    assert result["code"] == 2 and result["heavy"] == []
    assert f"evsys run: {bad}: " in output and "Traceback" not in output
    assert "Did you mean 'runs[1].algorithm.lr'?" in output


@pytest.mark.integration
def test_train_help_shows_groups_and_config_fast(tmp_path):
    result, output = probe("train", "--help", "data=addition", cwd=tmp_path)
    assert result["code"] == 0
    assert "algorithm: dpo, grpo, kto, pretrain, reward_model, rloo, sft" in output
    assert "dataset_name: addition" in output  # the config, with the overrides applied
    assert "schema" not in output  # the stored schemas are not options
    assert result["s"] < 10  # about 0.5 s idle (benchmarks/startup.py); only catches a slip


@pytest.mark.parametrize(
    "typo",
    [
        ["algorithm.lerning_rate=1"],
        ["+algorithm.lerning_rate=1"],
        ["-m", "algorithm.lerning_rate=1"],
        ["-m", "+algorithm.lerning_rate=1"],
        ["-m", "algorithm.lerning_rate=1,2"],
        ["+experiment=demo", "algorithm.lerning_rate=1", "-m"],
        ["--config-dir", str(REPO / "examples"), "algorithm.lerning_rate=1"],
    ],
)
@pytest.mark.integration
def test_a_typo_fails_fast_with_did_you_mean(tmp_path, typo):
    result, output = probe("train", *typo, cwd=tmp_path)
    assert result["code"] == 1
    # with or without `+`, one sentence naming the key; never Hydra's "+key" advice
    said = "Invalid config: 'algorithm.lerning_rate' is not a valid key (Key 'lerning_rate' not"
    assert said in output
    assert output.count("Did you mean 'algorithm.lr'?") == 1
    assert "To append" not in output and "HYDRA_FULL_ERROR" not in output
    assert "Nothing was run" in output
    if "-m" not in typo:
        assert not (tmp_path / "outputs" / "runs").exists() or not any(
            (tmp_path / "outputs" / "runs").iterdir()
        )  # no stray run dir
    assert result["heavy"] == []  # nothing of training was loaded
    # About 0.6 s on an idle 2-core machine (benchmarks/startup.py measures it); the bound
    # only catches a start-up that trains first, also when CI runs two tests per core pair.
    assert result["s"] < 10
    assert not list(tmp_path.rglob("result.json"))


@pytest.mark.integration
def test_messages_name_the_evsys_command(tmp_path):
    result, output = probe("train", "+experiment=demo", cwd=tmp_path)  # a preset without -m
    assert result["code"] == 1
    assert "add -m (evsys train +experiment=<name> -m)" in output
    assert "python -m" not in output


@pytest.mark.parametrize(
    "args",
    [
        ["hydra/sweeper=basic", "algorithm.lr=1e-3,3e-3", "-m"],
        ["hydra/sweeper=optuna", "hydra.sweeper.n_trials=3", "algorithm.lr=interval(1e-4,1e-2)"],
        ["algorithm=dpo", "algorithm.beta=0.2"],
        ["+experiment=demo", "experiment.n_repeats=1", "-m"],
        ["model=tiny", "model.hidden_size=32", "+data.extra=1", "~tags"],
    ],
)
def test_overrides_that_are_no_typos_pass_the_typo_check(args):
    assert quick.typo_errors(args) == []


@pytest.mark.integration
def test_bash_completion_offers_commands_keys_and_options(tmp_path):
    def complete(line: str) -> list[str]:
        result, output = probe("-sc", "query=bash", cwd=tmp_path, env={"COMP_LINE": line})
        assert result["code"] == 0, output
        return output.splitlines()[0].split() if output.strip() else []

    assert complete("evsys ") == list(COMMANDS)  # train, run, conclude, experiments, ...
    assert complete("evsys con") == ["conclude"]
    assert "algorithm.lr=" in complete("evsys train algorithm.l")
    assert "algorithm=dpo" in complete("evsys train algorithm=")
    assert "+experiment=demo" in complete("evsys train +experiment=de")
    launchers = complete("evsys train hydra/launcher=")
    assert {"hydra/launcher=local", "hydra/launcher=slurm"} <= set(launchers)
    assert not [option for option in launchers if "schema" in option]  # schemas are no choice


@pytest.mark.integration
def test_bash_completion_installs_for_the_console_script(tmp_path):
    # Hydra names the completed program after sys.argv[0]: the console script's path
    code = (
        "import sys; sys.argv[0] = '/venv/bin/evsys'; from evsys.cli.main import main; "
        "sys.exit(main(['train', '-sc', 'install=bash']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("-F hydra_bash_completion evsys")


def test_experiments_show_prints_the_lineage(tmp_path, capsys):
    info = {"name": "demo", "hypothesis": "h", "status": "completed"}
    registry.register(tmp_path, {**info, "id": "a", "best_arm": "lr_3e-3", "sweep_dir": "sa"})
    registry.register(tmp_path, {**info, "id": "b", "parent_experiment_id": "a"})
    registry.register(tmp_path, {**info, "id": "c", "parent_experiment_id": "b"})
    registry.register(tmp_path, {**info, "id": "orphan", "parent_experiment_id": "gone"})
    assert [row["id"] for row in registry.lineage(tmp_path, "c")] == ["c", "b", "a"]
    assert experiments.main(["show", "c", "--root", str(tmp_path)], prog="evsys experiments") == 0
    out = capsys.readouterr().out
    assert out.index("c [completed]") < out.index("<- b") < out.index("<- a [completed]")
    assert "best arm lr_3e-3" in out
    experiments.main(["show", "orphan", "--root", str(tmp_path)])
    assert "<- gone (not in this registry)" in capsys.readouterr().out
    experiments.main(["--root", str(tmp_path)])
    assert "parent" in capsys.readouterr().out


def test_conclude_takes_several_dirs(tmp_path, capsys):
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    one = write_sweep(tmp_path / "one", {"a": [0.9, 0.91], "b": [0.5, 0.51]})
    two = write_sweep(tmp_path / "two", {"a": [0.9, 0.91], "b": [0.5, 0.51]})
    assert conclude.main([str(one), str(two), "--quiet"]) == 0
    assert (one / "conclusion.md").is_file() and (two / "conclusion.md").is_file()
    assert conclude.main([str(one), str(tmp_path / "nowhere"), "--quiet"]) == 2
    assert "not a sweep dir" in capsys.readouterr().err


@pytest.mark.integration
def test_python_m_train_still_works(tmp_path):
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "evsys.train", "--cfg", "job", "algorithm.lr=0.01"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "lr: 0.01" in proc.stdout
    assert time.perf_counter() - start < 10
