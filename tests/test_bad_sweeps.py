"""Bad sweep specs, a rerun with other evaluation options, a crafted checkpoint in a sweep folder, and bad inputs to
`lit-daa analyze` / `evaluate` / `best-of-n`: each is one sentence naming the file, entry or option, exit code 2, no
traceback, and nothing run before it.

Every refusal here happens before any model is loaded; only the rerun test trains (one tiny sweep: a given
reference and one DPO run of two steps).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from lit_daa.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
RUN_ID = "tiny-DPO-beta0.1"


def spec(out_dir: Path) -> dict:
    """The smallest sweep: the embedded reference (nothing to SFT), one DPO run of 16 pairs (2 steps), 8 prompts."""
    fit = {
        "data.source.init_args.num_train": 16,
        "data.source.init_args.num_val": 8,
        "data.batch_size": 8,
        "trainer.val_check_interval": 1.0,
        "trainer.enable_progress_bar": False,
        "trainer.enable_model_summary": False,
    }
    return {
        "out_dir": str(out_dir),
        "fit": {"configs": [QUICKSTART], "overrides": fit},
        "models": [{"name": "tiny", "reference": "embedded:neox-tiny"}],
        "objectives": [{"objective": "DPO", "betas": [0.1]}],
        "fractions": [1.0],
        "evaluation": {"num_prompts": 8, "max_new_tokens": 4, "batch_size": 8, "forward_kl": False},
    }


def write(path: Path, values: object) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False) if not isinstance(values, str) else values)
    return path


def refused(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run `lit-daa ARGV`, expect exit code 2 and one `lit-daa: error:` line without a traceback; return it."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("lit-daa")]
    assert len(lines) == 1, err
    return lines[0]


def _set(values: dict, dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        values = values[int(key)] if isinstance(values, list) else values[key]
    if isinstance(values, list):
        values[int(last)] = value
    else:
        values[last] = value


SPEC_FAULTS = [
    ("objectives.0.objective", "lit_daa.objectives.DPOO", ["objectives[0]", "module lit_daa.objectives has no DPOO"]),
    ("objectives.0.objective", "no_such_module.DPO", ["objectives[0]", "cannot be imported"]),
    ("objectives.0.options", {"label_smoothin": 0.1}, ["objectives[0]", "takes no option(s) ['label_smoothin']"]),
    ("fit.configs", [QUICKSTART, "{tmp}/missing.yaml"], ["fit config {tmp}/missing.yaml", "fit.configs[1]"]),
    ("fit.configs", ["{tmp}/list.yaml"], ["{tmp}/list.yaml (fit.configs[0]", "holds a list at line 1"]),
    ("fit.configs", ["{tmp}/broken.yaml"], ["{tmp}/broken.yaml (fit.configs[0]", "not valid YAML at line 3"]),
    (
        "models",
        [{"name": "tiny", "sft": {"configs": [QUICKSTART, "{tmp}/sft.yaml"]}}],
        ["fit config {tmp}/sft.yaml (models[0].sft.configs[1]", "does not exist"],
    ),
    ("fit.overrides", {"trainer.max_stepz": 3}, ["option 'trainer.max_stepz' (fit.overrides", "not a lit-daa fit"]),
    ("objectives.0.overrides", {"modle.policy": "x"}, ["option 'modle.policy' (objectives[0].overrides"]),
]


@pytest.mark.parametrize(("entry", "value", "expected"), SPEC_FAULTS, ids=[f[0] + ":" + str(f[1]) for f in SPEC_FAULTS])
def test_a_bad_sweep_spec_is_refused_before_any_run(
    entry: str, value: object, expected: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write(tmp_path / "list.yaml", "- trainer\n- model\n")
    write(tmp_path / "broken.yaml", "trainer:\n  max_steps: [3\nmodel: {}\n")
    values = spec(tmp_path / "out")
    _set(values, entry, json.loads(json.dumps(value).replace("{tmp}", str(tmp_path))))
    config = write(tmp_path / "sweep.yaml", values)
    message = refused(["sweep", "--config", str(config)], capsys)
    assert f"sweep config {config}" in message
    for part in expected:
        assert part.replace("{tmp}", str(tmp_path)) in message
    assert not (tmp_path / "out").exists(), "nothing may run, or be written, before the spec is checked"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("out_dir: x\nfit:\n  configs: [a\nmodels: []\n", "is not valid YAML at line 4, column 7"),
        ("- out_dir\n- fit\n", "holds a list at line 1, not a mapping"),
        ("", "is empty"),
        (None, "does not exist"),
        ("out_dir: x\nobjectivs: []\n", "does not parse: Option 'objectivs' is not accepted"),
    ],
    ids=["syntax", "list", "empty", "missing", "unknown-key"],
)
def test_a_bad_sweep_file_is_named_with_its_line(
    text: str | None, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "sweep.yaml"
    if text is not None:
        config.write_text(text)
    message = refused(["sweep", "--config", str(config)], capsys)
    assert message.startswith(f"lit-daa: error: sweep config {config} ") and expected in message
    assert "<unicode string>" not in message


class Crafted:
    """Unpickling this opens (creates) `marker`: what a crafted checkpoint's payload could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def test_a_crafted_checkpoint_in_a_sweep_folder_is_refused_unexecuted(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    marker = tmp_path / "MARKER"
    checkpoint = tmp_path / "out" / "runs" / RUN_ID / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"global_step": Crafted(marker), "state_dict": {}}, checkpoint)  # a zip like Lightning's
    config = write(tmp_path / "sweep.yaml", spec(tmp_path / "out"))
    message = refused(["sweep", "--config", str(config)], capsys)
    assert message == (
        f"lit-daa: error: refused to load {checkpoint}: it holds objects other than tensors and plain values, which a "
        "lit-daa checkpoint never does and which could run code when unpickled; delete it (or its run folder) to "
        "train that run from the start"
    )
    assert not marker.exists()
    assert not (checkpoint.parents[1] / "status.json").exists(), "no fit was started"
    torch.load(checkpoint, weights_only=False)  # the file is live: the unsafe load that driver.py used runs it
    assert marker.exists()


def test_an_unreadable_checkpoint_in_a_sweep_folder_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    checkpoint = tmp_path / "out" / "runs" / RUN_ID / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"PK\x03\x04 cut short by a kill")
    config = write(tmp_path / "sweep.yaml", spec(tmp_path / "out"))
    message = refused(["sweep", "--config", str(config)], capsys)
    assert f"{checkpoint} is not a readable checkpoint" in message and "delete it" in message


@pytest.mark.slow
def test_a_rerun_with_other_evaluation_options_needs_reevaluate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    values = spec(tmp_path / "out")
    config = write(tmp_path / "sweep.yaml", values)
    assert main(["sweep", "--config", str(config)]) == 0
    run = tmp_path / "out" / "runs" / RUN_ID
    saved = tmp_path / "out" / "sweep.yaml"
    evals = sorted(run.glob("evals/*.json")) + sorted((tmp_path / "out" / "runs" / "tiny-sft").glob("evals/*.json"))
    assert len(evals) == 2
    before = {p: p.stat().st_mtime_ns for p in [*evals, saved, run / "checkpoints" / "last.ckpt"]}
    capsys.readouterr()

    values["evaluation"]["num_prompts"] = 6
    changed = write(tmp_path / "changed.yaml", values)
    message = refused(["sweep", "--config", str(changed)], capsys)
    assert message == (
        f"lit-daa: error: the sweep in {tmp_path / 'out'} was evaluated with other evaluation options than sweep "
        f"config {changed} gives now (evaluation.num_prompts 8 -> 6); pass --reevaluate to evaluate its trained "
        "checkpoints again with the new ones (no training is repeated), or choose another out_dir"
    )
    assert {p: p.stat().st_mtime_ns for p in before} == before, "nothing rewritten, sweep.yaml included"

    # other fit options under the same run names are refused the same way (the run's fit.yaml records its sources)
    other_fit = json.loads(json.dumps(spec(tmp_path / "out")))
    other_fit["fit"]["overrides"]["data.batch_size"] = 4
    message = refused(["sweep", "--config", str(write(tmp_path / "other_fit.yaml", other_fit))], capsys)
    assert f"run {RUN_ID} was started from {run / 'fit.yaml'}" in message and "data.batch_size" in message

    assert main(["sweep", "--config", str(changed), "--reevaluate"]) == 0
    assert "dropped the stored evaluations of 2 runs" in capsys.readouterr().out
    assert all(p.stat().st_mtime_ns != before[p] for p in evals), "every checkpoint evaluated again"
    assert (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == before[run / "checkpoints" / "last.ckpt"]
    assert len(json.loads((run / "status.json").read_text())) == 1, "no second fit"
    assert yaml.safe_load(saved.read_text())["evaluation"]["num_prompts"] == 6
    assert main(["sweep", "--config", str(changed)]) == 0  # now the stored options are the new ones


def test_other_evaluation_options_are_refused_before_anything_is_rewritten(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The refusal and --reevaluate's drop without training: the stored sweep.yaml comes from --print_commands, the
    stored evaluation is the reference's row file (the slow test above does the same after a real sweep)."""
    values = spec(tmp_path / "out")
    assert main(["sweep", "--config", str(write(tmp_path / "sweep.yaml", values)), "--print_commands"]) == 0
    reference = tmp_path / "out" / "runs" / "tiny-sft"
    (reference / "evals").mkdir(parents=True)
    write(reference / "evals" / "reference.json", "{}")
    write(reference / "DONE.json", "[]")
    saved = (tmp_path / "out" / "sweep.yaml").read_text()
    values["evaluation"]["max_new_tokens"] = 5
    values["evaluation"]["batch_size"] = 4
    changed = write(tmp_path / "changed.yaml", values)
    message = refused(["sweep", "--config", str(changed), "--print_commands"], capsys)
    assert "options than sweep config" in message and "pass --reevaluate" in message
    assert "(evaluation.batch_size 8 -> 4; evaluation.max_new_tokens 4 -> 5)" in message
    assert (tmp_path / "out" / "sweep.yaml").read_text() == saved and (reference / "DONE.json").is_file()

    assert main(["sweep", "--config", str(changed), "--print_commands", "--reevaluate"]) == 0
    assert not (reference / "DONE.json").exists() and not (reference / "evals").exists()
    assert yaml.safe_load((tmp_path / "out" / "sweep.yaml").read_text())["evaluation"]["max_new_tokens"] == 5


def test_reevaluate_refuses_read_only_actions(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write(tmp_path / "sweep.yaml", spec(tmp_path / "out"))
    message = refused(["sweep", "--config", str(config), "--reevaluate", "--collect"], capsys)
    assert "--reevaluate cannot be combined with --collect" in message


@pytest.mark.parametrize(
    ("option", "content", "expected"),
    [
        ("--toy-mdp", "seed,objective,beta,step,in_data_mass\n0,DPO,0.1,0,0.5\n", "has no column(s) ['in_data_start'"),
        ("--toy-mdp", "", "cannot be read as CSV"),
        ("--toy-mdp", None, "does not exist"),
        ("--best-of-n", "model,seed\ntiny,0\n", "has no column(s) ['selector', 'n', 'sqrt_kl', 'win_rate']"),
    ],
    ids=["toy-records-csv", "toy-empty", "toy-missing", "best-of-n-columns"],
)
def test_analyze_names_a_wrong_side_table(
    option: str, content: str | None, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    results = write(tmp_path / "results.csv", "run_id\nx\n")  # read after the side tables
    side = tmp_path / "side.csv"
    if content is not None:
        side.write_text(content)
    message = refused(["analyze", str(results), option, str(side), "--no-figures"], capsys)
    assert f"{option} {side} {expected}" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "results file {path} does not exist"), ("run_id,beta\nx,0.1\n", "results table {path} has no column(s)")],
    ids=["missing", "columns"],
)
def test_analyze_names_a_bad_results_table(
    content: str | None, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "results.csv"
    if content is not None:
        path.write_text(content)
    assert main(["analyze", str(path), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert expected.format(path=path) in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--policy", "{missing}", "--reference", "embedded:neox-tiny"],
        ["best-of-n", "--policy", "{missing}", "--out", "{tmp}/bon.csv"],
    ],
    ids=["evaluate", "best-of-n"],
)
def test_a_missing_model_folder_is_named(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "no_such_model"
    argv = [a.replace("{missing}", str(missing)).replace("{tmp}", str(tmp_path)) for a in argv]
    message = refused(argv, capsys)
    assert f"--policy '{missing}' is not an existing model folder" in message
    assert not (tmp_path / "bon.csv").exists()


def test_no_unsafe_loads_in_the_package() -> None:
    """Every torch.load in lit_daa is weights_only=True, and nothing unpickles with the pickle module."""
    texts = {p: p.read_text() for p in (ROOT / "lit_daa").rglob("*.py")}
    assert [p for p, text in texts.items() if "weights_only=False" in text or "pickle.load" in text] == []
