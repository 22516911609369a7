"""`lit-daa sweep`: grid expansion, the results table, skipping finished work, printed commands, SLURM script.

One tiny sweep (a trained SFT reference, DPO and IPO at two betas each, 8 steps per run, checkpoints at half and
all of the epoch, 32 evaluation prompts) is run once per module and shared by the tests that read its outputs.
The SIGKILL-and-resume test is in test_sweep_resume.py.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from jsonargparse import Namespace

from lit_daa.cli import main
from lit_daa.errors import InputError
from lit_daa.sweep import (
    COLUMNS,
    DAARun,
    FitSpec,
    GivenReference,
    LogGrid,
    ModelSpec,
    ObjectiveSpec,
    ReferenceRun,
    Sweep,
    SweepConfig,
    TrainedReference,
    expand,
)
from lit_daa.sweep.cli import build_parser, load_config
from lit_daa.sweep.fit_config import FitOptions, parse_fit_config, read_fit_config

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
SFT = str(ROOT / "configs" / "objectives" / "sft.yaml")
SMALL_FIT = {
    "data.source.init_args.num_train": 64,
    "data.source.init_args.num_val": 16,
    "data.batch_size": 8,
    "trainer.val_check_interval": 1.0,
    "trainer.enable_progress_bar": False,
    "trainer.enable_model_summary": False,
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One intra-op thread: as fast for these tiny models, and immune to OpenMP spin-waits on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_sweep_yaml(out_dir: Path, **extra: object) -> dict:
    """One SFT-trained model, DPO and IPO at two betas, 64 pairs (8 steps), checkpoints at 1/2 and 1 of the epoch."""
    return {
        "out_dir": str(out_dir),
        "fit": {"configs": [QUICKSTART], "overrides": SMALL_FIT},
        "models": [{"name": "tiny", "sft": {"configs": [QUICKSTART, SFT], "overrides": SMALL_FIT}}],
        "objectives": [
            {"objective": "DPO", "betas": [0.1, 1.0]},
            {"objective": "lit_daa.objectives.IPO", "betas": {"start": 0.1, "stop": 1.0, "num": 2}},
        ],
        "fractions": [0.5, 1.0],
        "evaluation": {"num_prompts": 32, "max_new_tokens": 6, "batch_size": 32},
        **extra,
    }


def write_yaml(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny sweep, run to the end through `lit-daa sweep`; returns its config file."""
    folder = tmp_path_factory.mktemp("sweep")
    config = write_yaml(folder / "sweep.yaml", tiny_sweep_yaml(folder / "out"))
    assert main(["sweep", "--config", str(config)]) == 0
    return config


def test_grid_expands_references_first_then_model_objective_beta(tmp_path: Path) -> None:
    config = SweepConfig(
        out_dir=str(tmp_path),
        fit=FitSpec(configs=["base.yaml"], overrides={"trainer.max_steps": 5}),
        models=[
            ModelSpec("a", sft=FitSpec(configs=["sft.yaml"])),
            ModelSpec("b", reference="embedded:neox-small", overrides={"data.batch_size": 4}),
        ],
        objectives=[
            ObjectiveSpec("DPO", betas=[0.3, 0.1]),
            ObjectiveSpec("lit_daa.objectives.IPO", betas=LogGrid(0.01, 1.0, 3), options={"form": "azar"}),
        ],
    )
    runs = expand(config)
    assert [r.run_id for r in runs] == [
        "a-sft",
        "b-sft",
        *[f"{m}-{o}" for m in "ab" for o in ("DPO-beta0.3", "DPO-beta0.1", "IPO-beta0.01", "IPO-beta0.1", "IPO-beta1")],
    ]
    assert [r.index for r in runs] == list(range(12))
    assert [type(r) for r in runs[:3]] == [TrainedReference, GivenReference, DAARun]
    assert runs[0].fit_options().configs == ["sft.yaml"] and runs[1].fit_options() is None
    b_ipo = runs[-1].fit_options()
    assert b_ipo.configs == ["base.yaml"] and b_ipo.overrides[0] == ("trainer.max_steps", 5)
    overrides = dict(b_ipo.overrides)
    assert overrides["data.batch_size"] == 4
    assert overrides["trainer.default_root_dir"] == str(tmp_path / "runs" / "b-IPO-beta1")
    assert overrides["model.policy"] == "embedded:neox-small"
    objective = {"class_path": "lit_daa.objectives.IPO", "init_args": {"form": "azar", "beta": 1.0}}
    assert overrides["model.objective"] == objective
    assert overrides["trainer.callbacks+"]["class_path"] == "lit_daa.checkpoints.IntraEpochCheckpoints"
    assert dict(runs[2].fit_options().overrides)["model.policy"] == str(tmp_path / "runs" / "a-sft" / "hf_policy")
    assert runs[2].blocked_by() is not None and runs[7].blocked_by() is None  # a's reference is not trained yet


def old_argv(options: FitOptions) -> list[str]:
    """The arguments the sweep used to pass to `lit-daa fit`: structured values as JSON after `--key=`."""
    args = [arg for path in options.configs for arg in ("--config", path)]
    return args + [f"--{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in options.overrides]


def without_config_files(namespace: Namespace) -> Namespace:
    namespace = namespace.clone()
    namespace.pop("config", None)  # which files were read, not what they say
    return namespace


def test_fit_yaml_reads_back_as_the_config_the_old_arguments_gave(tmp_path: Path) -> None:
    values = tiny_sweep_yaml(tmp_path / "out", seeds=[3, 4])
    values["objectives"] = [
        {
            "objective": "IPO",
            "betas": [0.5],
            "options": {"form": "azar"},
            "overrides": {  # a structured option after the run's own, and a second callback
                "model.optimizer": {"class_path": "torch.optim.RMSprop", "init_args": {"lr": 5.0e-4}},
                "trainer.callbacks+": {"class_path": "lit_daa.moving_reference.MovingReference"},
                "trainer.gradient_clip_val": 5.0,
            },
        }
    ]
    runs = expand(load_config(write_yaml(tmp_path / "sweep.yaml", values)))
    reference, daa = runs[0], runs[1]
    assert (reference.run_id, daa.run_id) == ("tiny-sft", "tiny-IPO-beta0.5-s3")
    for run in (reference, daa):
        path = run.fit_config()
        assert path == run.root / "fit.yaml" and run.fit_args() == ["--config", str(path)]
        resolved = read_fit_config(path)
        assert without_config_files(resolved) == without_config_files(parse_fit_config(old_argv(run.fit_options())))
    config = yaml.safe_load((daa.root / "fit.yaml").read_text())
    assert config["model"]["objective"]["init_args"] == {"beta": 0.5, "form": "azar", "per_token": False}
    assert [c["class_path"].rsplit(".", 1)[-1] for c in config["trainer"]["callbacks"]] == [
        "IntraEpochCheckpoints",
        "MovingReference",
    ]
    assert config["model"]["optimizer"]["class_path"] == "torch.optim.RMSprop" and config["seed_everything"] == 3
    assert config["model"]["policy"] == str(reference.root / "hf_policy")
    assert "tokenizer" not in config["data"]  # a link target: `lit-daa fit` links it from model.policy again


def test_fit_yaml_is_resolved_once_and_a_changed_config_is_reported(tmp_path: Path, capsys) -> None:
    values = tiny_sweep_yaml(tmp_path / "out")
    values["objectives"] = [{"objective": "DPO", "betas": [0.1]}]
    config_path = write_yaml(tmp_path / "sweep.yaml", values)
    run = expand(load_config(config_path))[1]
    path = run.fit_config()
    before = path.stat().st_mtime_ns
    assert expand(load_config(config_path))[1].fit_config() == path and path.stat().st_mtime_ns == before

    values["fit"]["overrides"] = {**SMALL_FIT, "data.batch_size": 4}
    write_yaml(config_path, values)
    changed = expand(load_config(config_path))[1]
    assert changed.stale_fit_config() == ["options data.batch_size"]
    (run.root / "status.json").write_text("[]")  # the run has started: its fit.yaml must not change under it
    with pytest.raises(InputError, match=r"run tiny-DPO-beta0.1 was started from .*fit.yaml.*data.batch_size"):
        changed.fit_config()
    with pytest.raises(InputError, match="restore the sweep config, or delete"):
        Sweep(load_config(config_path)).execute()
    assert path.stat().st_mtime_ns == before
    (run.root / "status.json").unlink()  # not started: resolved again, with a note
    assert changed.fit_config() == path and read_fit_config(path).data.batch_size == 4
    assert "resolving" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"models": [{"name": "m", "sft": {"configs": []}, "reference": "x"}]}, "exactly one of sft and reference"),
        ({"models": [{"name": "m", "reference": "x"}, {"name": "m", "reference": "y"}]}, "model names must be unique"),
        ({"objectives": [{"objective": "DPO", "betas": [0.1, -1.0]}]}, "betas must be"),
        ({"objectives": [{"objective": "NoSuchObjective", "betas": [0.1]}]}, "not in lit_daa.objectives"),
    ],
)
def test_bad_sweep_configs_are_one_sentence(tmp_path: Path, change: dict, message: str) -> None:
    values = {**tiny_sweep_yaml(tmp_path / "out"), **change}
    with pytest.raises(InputError, match=message):
        expand(load_config(write_yaml(tmp_path / "bad.yaml", values)))


def test_sweep_writes_one_row_per_checkpoint_and_reference(finished: Path) -> None:
    out = finished.parent / "out"
    table = pd.read_csv(out / "results.csv")
    assert tuple(table.columns) == COLUMNS
    assert tuple(pd.read_parquet(out / "results.parquet").columns) == COLUMNS
    assert list(table.run_id) == ["tiny-sft"] + [
        run for run in ("tiny-DPO-beta0.1", "tiny-DPO-beta1", "tiny-IPO-beta0.1", "tiny-IPO-beta1") for _ in (1, 2)
    ]
    reference = table.iloc[0]
    assert reference.objective == "SFT" and math.isnan(reference.beta) and reference.kl == 0.0
    assert reference.step == 0 and reference.epoch_fraction == 0.0 and not reference.is_final
    runs = table.iloc[1:]
    assert list(runs.step) == [4, 8] * 4 and list(runs.examples_seen) == [32, 64] * 4
    assert list(runs.is_final) == [False, True] * 4 and list(runs.epoch_fraction) == [0.5, 1.0] * 4
    assert set(runs.objective) == {"DPO", "IPO"} and set(runs.beta) == {0.1, 1.0}
    assert (table.params == reference.params).all() and (table.model == "tiny").all()
    for column in ("kl", "sqrt_kl", "win_rate", "mean_length", "val_accuracy", "val_loss", "chosen_logratio"):
        assert runs[column].notna().all(), column
    assert (runs.kl != 0).all(), "trained checkpoints should have moved away from the reference"
    samples = out / "runs" / "tiny-DPO-beta0.1" / "evals" / "examples_00000032.samples.jsonl"
    assert len(samples.read_text().splitlines()) == 32


def test_rerun_skips_finished_runs_and_reuses_evaluations(finished: Path) -> None:
    out = finished.parent / "out"
    markers = sorted(out.glob("runs/*/DONE.json")) + sorted(out.glob("runs/*/evals/*.json"))
    assert len(markers) == 5 + 9
    before = {p: p.stat().st_mtime_ns for p in markers}
    sweep = Sweep(load_config(finished))
    assert sweep.execute() == 0
    assert sweep.fits_started == 0 and sweep.evaluator.evaluated == []
    assert {p: p.stat().st_mtime_ns for p in markers} == before

    # A run that died after evaluating one of its checkpoints evaluates only the other one, without training.
    run = out / "runs" / "tiny-IPO-beta1"
    (run / "DONE.json").unlink()
    (run / "evals" / "examples_00000064.json").unlink()
    sweep = Sweep(load_config(finished))
    assert sweep.execute() == 0
    assert sweep.fits_started == 0
    assert sweep.evaluator.evaluated == [str(run / "intra_epoch" / "examples_00000064")]
    assert (run / "evals" / "examples_00000032.json").stat().st_mtime_ns == before[run / "evals/examples_00000032.json"]
    assert len(pd.read_csv(out / "results.csv")) == 9


def test_printed_commands_parse(finished: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["sweep", "--config", str(finished), "--print_commands"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line and not line.startswith("#")]
    fits = [shlex.split(line) for line in lines if line.startswith("lit-daa fit ")]
    evaluates = [shlex.split(line) for line in lines if line.startswith("lit-daa sweep ")]
    assert len(fits) == 5 and len(evaluates) == 5 and len(lines) == 10
    assert not any("{" in line for line in lines)
    roots = [run.root for run in Sweep(load_config(finished)).runs]
    assert [command[1:] for command in fits] == [["fit", "--config", str(root / "fit.yaml")] for root in roots]
    for command in fits:
        with pytest.raises(SystemExit) as exit_info:
            main([*command[1:], "--print_config"])
        assert exit_info.value.code in (0, None)
        printed = yaml.safe_load(capsys.readouterr().out)
        assert printed["trainer"]["default_root_dir"].startswith(str(finished.parent / "out" / "runs"))
    daa = yaml.safe_load(_print_config(fits[-1], capsys))
    assert daa["model"]["objective"]["class_path"] == "lit_daa.objectives.IPO"
    assert daa["model"]["objective"]["init_args"]["beta"] == 1.0
    assert daa["trainer"]["callbacks"][-1]["init_args"]["fractions"] == [0.5, 1.0]
    for command in evaluates:
        parsed = build_parser().parse_args(command[2:])
        assert parsed.stage == "evaluate" and parsed.only_run in range(5)


def _print_config(command: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit):
        main([*command[1:], "--print_config"])
    return capsys.readouterr().out


def test_slurm_script_submits_references_then_runs(finished: Path, tmp_path: Path, capsys) -> None:
    script = tmp_path / "sweep.sbatch"
    assert main(["sweep", "--config", str(finished), "--slurm", str(script)]) == 0
    text = script.read_text()
    assert "#SBATCH --job-name=lit-daa-sweep" in text
    # stand-ins for sbatch and srun that record their arguments
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sbatch", "srun"):
        path = bin_dir / tool
        path.write_text(f'#!/bin/bash\necho "$@" >> {tmp_path}/{tool}.calls\necho 1{len(tool)}\n')
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("SLURM_ARRAY_TASK_ID", None)
    subprocess.run(["bash", str(script)], check=True, env=env, capture_output=True)
    submits = (tmp_path / "sbatch.calls").read_text().splitlines()
    assert submits[0].startswith("--parsable --array=0-0 ")
    assert submits[1].startswith("--parsable --dependency=afterok:16 --array=1-4 ")
    assert submits[2].startswith("--dependency=afterany:16 ") and "--collect" in submits[2]
    task = {**env, "SLURM_ARRAY_TASK_ID": "3"}
    finished_run = subprocess.run(["bash", str(script)], check=True, env=task, capture_output=True, text=True)
    assert "is finished" in finished_run.stdout and not (tmp_path / "srun.calls").exists()
    run = Sweep(load_config(finished)).runs[3]
    markers = [run.root / "DONE.json", run.root / "FIT_DONE"]
    for marker in markers:  # as if the run had not been trained yet (the stand-in srun changes nothing)
        marker.rename(marker.with_suffix(".aside"))
    try:
        subprocess.run(["bash", str(script)], check=True, env=task, capture_output=True)
    finally:
        for marker in markers:
            marker.with_suffix(".aside").rename(marker)
    fit, evaluate = (shlex.split(line) for line in (tmp_path / "srun.calls").read_text().splitlines())
    # the task trains from the same file the sweep resolved, the in-process fit used and the held-out scoring reads
    assert fit == ["lit-daa", "fit", "--config", str(run.root / "fit.yaml"), "--ckpt_path=last"]
    assert run.fit_args() == fit[2:4]
    assert {target.heldout_config for target in run.eval_targets()} == {run.root / "fit.yaml"}
    program, *args = evaluate
    assert program == "lit-daa" and args[-4:] == ["--only_run", "3", "--stage", "evaluate"]
    capsys.readouterr()
    assert main([*args, "--print_commands"]) == 0  # the task's arguments parse and name run 3
    assert "# run 3: tiny-IPO-beta0.1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "config", sorted((ROOT / "configs" / "sweeps").glob("*.yaml")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_shipped_sweep_config_parses(config: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(ROOT)  # shipped sweeps name their fit configs relative to the repository root
    runs = Sweep(load_config(config, f"--out_dir={tmp_path}")).runs
    references = [run for run in runs if isinstance(run, ReferenceRun)]  # `{model}-sft[-s{seed}]`
    daa = runs[len(references) :]
    assert references and daa
    for run in (references[0], daa[0], daa[-1]):  # each resolves only its own fit.yaml
        assert main(["sweep", "--config", str(config), f"--out_dir={tmp_path}", "--print_commands"]
                    + ["--only_run", str(run.index)]) == 0  # fmt: skip
        (fit,) = [shlex.split(line) for line in capsys.readouterr().out.splitlines() if line.startswith("lit-daa fit")]
        assert fit == ["lit-daa", "fit", "--config", str(run.root / "fit.yaml")]
        printed = yaml.safe_load(_print_config(fit, capsys))
        assert printed["export"]["enabled"] or run in daa


def test_collect_and_analyze(finished: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("lit_daa.analysis.analyze")
    pytest.importorskip("matplotlib")
    assert main(["sweep", "--config", str(finished), "--collect", "--analyze"]) == 0
    assert (finished.parent / "out" / "analysis" / "report.md").is_file()


def test_slurm_script_asks_for_each_runs_nodes_and_gpus(tmp_path: Path) -> None:
    big = {"trainer.num_nodes": 2, "trainer.devices": 4, "trainer.accelerator": "gpu", "trainer.strategy": "fsdp2"}
    values = tiny_sweep_yaml(tmp_path / "out")
    values["objectives"] = [{"objective": "DPO", "betas": [0.1]}]
    values["models"] = [
        {"name": "small", "reference": "embedded:neox-tiny"},
        {"name": "big", "sft": {"configs": [QUICKSTART, SFT], "overrides": {**SMALL_FIT, **big}}, "overrides": big},
    ]
    config = write_yaml(tmp_path / "sweep.yaml", values)
    script = tmp_path / "sweep.sbatch"
    assert main(["sweep", "--config", str(config), "--slurm", str(script)]) == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    counter = tmp_path / "jobs"
    (bin_dir / "sbatch").write_text(
        f'#!/bin/bash\necho "$@" >> {tmp_path}/sbatch.calls\necho x >> {counter}\necho "$(wc -l < {counter});c"\n'
    )
    (bin_dir / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("SLURM_ARRAY_TASK_ID", None)
    subprocess.run(["bash", str(script)], check=True, env=env, capture_output=True)
    calls = (tmp_path / "sbatch.calls").read_text().splitlines()
    # runs: 0 small reference (given: nothing to train), 1 big SFT reference, 2 small DPO, 3 big DPO
    shape = "--nodes=2 --ntasks-per-node=4 --gpus-per-node=4"
    assert calls[0].startswith("--parsable --array=0-0 ")
    assert calls[1].startswith(f"--parsable {shape} --array=1-1 ")
    assert calls[2].startswith("--parsable --dependency=afterok:1:2 --array=2-2 ")
    assert calls[3].startswith(f"--parsable --dependency=afterok:1:2 {shape} --array=3-3 ")
    assert calls[4].startswith("--dependency=afterany:3:4 ") and "--collect" in calls[4]
