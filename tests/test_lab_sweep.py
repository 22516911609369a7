"""The lab's sweep features: seeds, variants, per-objective sizes, worker shards, the shared preference set and its
mechanism controls, the schema in one place, and the controls run end to end in a tiny configuration."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lit_daa.cli import main
from lit_daa.errors import InputError
from lit_daa.results_schema import COLUMNS, markdown
from lit_daa.sweep import FitSpec, ModelSpec, ObjectiveSpec, Sweep, SweepConfig, expand
from lit_daa.sweep.cli import parse_shard
from lit_daa.sweep.runs import ReferenceRun
from lit_daa.synthetic.source import SharedPreferencePairs
from lit_daa.synthetic.world import GoldReward

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, **extra: object) -> SweepConfig:
    return SweepConfig(
        out_dir=str(tmp_path),
        fit=FitSpec(configs=["base.yaml"]),
        models=[ModelSpec("a", reference="embedded:neox-tiny"), ModelSpec("b", reference="embedded:neox-mini")],
        objectives=[
            ObjectiveSpec("DPO", betas=[0.1, 1.0]),
            ObjectiveSpec(
                "DPO",
                betas=[0.1],
                variant="coverage",
                models=["a"],
                seeds=[5],
                overrides={"data.source.init_args.data_max_length": 14},
            ),
        ],
        **extra,
    )


# a tiny fit for the end-to-end sweeps below: 32 pairs, 16 held out
SMALL_FIT = {
    "data.source.init_args.num_train": 32,
    "data.source.init_args.num_val": 16,
    "data.batch_size": 8,
    "data.eval_batch_size": 16,
    "trainer.enable_progress_bar": False,
}


def test_seeds_variants_and_sizes_expand_into_named_runs(tmp_path: Path) -> None:
    runs = expand(_config(tmp_path, seeds=[0, 1]))
    ids = [run.run_id for run in runs]
    assert ids == [
        "a-sft",
        "b-sft",
        "a-DPO-beta0.1-s0",
        "a-DPO-beta0.1-s1",
        "a-DPO-beta1-s0",
        "a-DPO-beta1-s1",
        "a-DPO-coverage-beta0.1-s5",  # the control runs on size a only, with its own seed
        "b-DPO-beta0.1-s0",
        "b-DPO-beta0.1-s1",
        "b-DPO-beta1-s0",
        "b-DPO-beta1-s1",
    ]
    control = runs[6]
    overrides = control.fit_options().overrides
    assert ("seed_everything", 5) in overrides and ("data.source.init_args.seed", 5) in overrides
    assert overrides[-1] == ("data.source.init_args.data_max_length", 14)  # the variant's own options come last
    assert control.row_base() | {} == {
        "run_id": "a-DPO-coverage-beta0.1-s5",
        "objective": "DPO",
        "variant": "coverage",
        "beta": 0.1,
        "seed": 5,
        "model": "a",
    }


def test_without_seeds_run_ids_and_fit_args_are_as_before(tmp_path: Path) -> None:
    config = _config(tmp_path, seeds=[0])
    config.seeds, config.objectives = None, config.objectives[:1]
    runs = expand(config)
    assert runs[2].run_id == "a-DPO-beta0.1"
    assert not any(key == "seed_everything" for key, _ in runs[2].fit_options().overrides)


def test_sft_per_seed_gives_each_seed_its_own_reference(tmp_path: Path) -> None:
    config = _config(tmp_path, seeds=[0, 1], sft_per_seed=True)
    config.models[0] = ModelSpec("a", sft=FitSpec(configs=["sft.yaml"], overrides={"trainer.max_epochs": 2}))
    runs = expand(config)
    references = [run for run in runs if isinstance(run, ReferenceRun)]
    # the control trains a with seed 5 only: a gets a reference for it too; b's given reference stays shared
    assert [run.run_id for run in references] == ["a-sft-s0", "a-sft-s1", "a-sft-s5", "b-sft"]
    assert [run.seed for run in references] == [0, 1, 5, 0]
    assert [run.row_base()["seed"] for run in references] == [0, 1, 5, 0]
    for run in references[:3]:
        overrides = run.fit_options().overrides
        assert overrides[0] == ("trainer.max_epochs", 2)
        assert ("seed_everything", run.seed) in overrides and ("data.source.init_args.seed", run.seed) in overrides
        assert run.root == tmp_path / "runs" / run.run_id
    daa = [run for run in runs if not isinstance(run, ReferenceRun)]
    assert [run.run_id for run in daa] == [run.run_id for run in expand(_config(tmp_path, seeds=[0, 1]))[2:]]
    for run in daa:
        expected = f"a-sft-s{run.seed}" if run.model.name == "a" else "b-sft"
        assert run.reference.run_id == expected
        assert dict(run.fit_options().overrides)["model.policy"] == run.reference.model_path
    first = daa[0]
    first.reference.root.mkdir(parents=True)
    assert first.blocked_by() is not None and "a-sft-s0" in first.blocked_by()
    first.reference.mark_fit_done()
    assert first.blocked_by() is None and daa[1].blocked_by() is not None  # seed 1 waits for its own reference
    with pytest.raises(InputError, match="sft_per_seed trains a reference per seed; give the sweep's `seeds`"):
        SweepConfig(
            out_dir=str(tmp_path), fit=FitSpec(), models=config.models[:1], objectives=[ObjectiveSpec("DPO", [0.1])],
            sft_per_seed=True,
        )  # fmt: skip


def test_without_sft_per_seed_every_seed_shares_the_reference(tmp_path: Path) -> None:
    config = _config(tmp_path, seeds=[0, 1])
    config.models[0] = ModelSpec("a", sft=FitSpec(configs=["sft.yaml"]))
    runs = expand(config)
    assert [run.run_id for run in runs[:2]] == ["a-sft", "b-sft"]
    assert {run.reference.run_id for run in runs[2:] if run.model.name == "a"} == {"a-sft"}
    assert not any(key == "seed_everything" for key, _ in runs[0].fit_options().overrides)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"seeds": [1, 1]}, "different seeds"),
        ({"workers": 0}, "workers must be at least 1"),
    ],
)
def test_bad_lab_options_are_one_sentence(tmp_path: Path, extra: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        _config(tmp_path, **extra)


def test_objective_seeds_need_sweep_seeds_and_known_sizes(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="give the sweep's `seeds` too"):
        _config(tmp_path)  # the control sets seeds, the sweep does not
    bad = ObjectiveSpec("DPO", betas=[0.1], models=["zzz"])
    with pytest.raises(InputError, match=r"models \['zzz'\] are not among"):
        SweepConfig(out_dir=str(tmp_path), fit=FitSpec(), models=[ModelSpec("a", reference="x")], objectives=[bad])


def test_shards_split_the_daa_runs_between_workers(tmp_path: Path) -> None:
    sweep = Sweep(_config(tmp_path, seeds=[0, 1]))
    daa = [run for run in sweep.runs if not isinstance(run, ReferenceRun)]
    shards = [sweep.select(None, (k, 3)) for k in range(3)]
    assert sorted(run.index for shard in shards for run in shard) == [run.index for run in daa]
    assert all(abs(len(a) - len(b)) <= 1 for a in shards for b in shards)
    assert parse_shard("1/3") == (1, 3)
    with pytest.raises(InputError, match="K/N"):
        parse_shard("1-3")
    with pytest.raises(InputError, match="0 <= K < N"):
        sweep.select(None, (3, 3))


def test_schema_doc_is_generated_from_the_schema_module() -> None:
    doc = (ROOT / "docs" / "results_schema.md").read_text()
    assert markdown() in doc
    assert COLUMNS[:3] == ("run_id", "objective", "variant")


def test_shared_pairs_and_their_controls() -> None:
    gold = GoldReward(1.0, 1.0, 8, 2.0)
    base = SharedPreferencePairs(num_train=400, num_val=0, seed=3)
    rows = list(base.train())
    assert rows == list(SharedPreferencePairs(num_train=400, num_val=0, seed=3).train())  # no model: the same pairs
    lengths = [len(r[k].split()) for r in rows for k in ("chosen", "rejected")]
    assert min(lengths) >= 2 and max(lengths) <= 8  # the base world never shows the over-length region
    coverage = list(SharedPreferencePairs(num_train=400, num_val=0, seed=3, data_max_length=14).train())
    assert max(len(r[k].split()) for r in coverage for k in ("chosen", "rejected")) > 8
    noiseless = list(SharedPreferencePairs(num_train=400, num_val=0, seed=3, noiseless=True).train())
    assert all(gold(r["prompt"], r["chosen"]) > gold(r["prompt"], r["rejected"]) for r in noiseless)
    # Bradley-Terry at scale 1 mislabels a visible share of the base pairs
    wrong = sum(gold(r["prompt"], r["chosen"]) < gold(r["prompt"], r["rejected"]) for r in rows) / len(rows)
    assert 0.05 < wrong < 0.4
    with pytest.raises(InputError, match="data_max_length 1 is below min_length 2"):
        SharedPreferencePairs(data_max_length=1)


def test_gold_breakdown_adds_up() -> None:
    gold = GoldReward(relevance_weight=1.0, length_weight=1.0, target_length=4, overlength_weight=2.0)
    prompt = "topic music : music_1 . answer :"
    parts = gold.breakdown(prompt, " music_1 music_2 food_3 the a very")  # 2 on, 1 off, 6 words
    assert parts == {"relevance": 1.0, "short_penalty": 0.0, "long_penalty": 4.0}
    assert gold(prompt, " music_1 music_2 food_3 the a very") == -3.0
    assert gold.breakdown(prompt, " music_1")["short_penalty"] == 3.0


def test_controls_run_in_a_tiny_configuration(tmp_path: Path) -> None:
    """The lab's ablation and control (R-DPO at an alpha that shortens answers, a quarter of the pairs for 4 epochs),
    2 seeds, 2 workers, on a given reference: each writes rows with its variant and seed, gold terms, the cut share
    and the out-of-data mass; the data-quantity control takes as many optimiser steps as the full data."""
    betas = [0.1]
    lab = yaml.safe_load((ROOT / "configs" / "sweeps" / "lab.yaml").read_text())
    variants = [o for o in lab["objectives"] if o.get("variant")]
    assert {o["variant"] for o in variants} == {"alpha4", "quarter4x", "overopt"}
    controls = [o for o in variants if o["variant"] != "overopt"]  # the objectives against over-optimisation: below
    for objective in controls:
        objective["betas"], objective["models"] = betas, ["tiny"]
        overrides = objective.setdefault("overrides", {})
        if "data.source.init_args.num_train" in overrides:
            overrides["data.source.init_args.num_train"] = 8  # a quarter of the 32 pairs, for 4 epochs
    config = {
        "out_dir": str(tmp_path / "out"),
        "workers": 2,
        "seeds": [0, 1],
        "fit": {"configs": [str(ROOT / "configs" / "lab" / "daa.yaml")], "overrides": SMALL_FIT},
        "models": [{"name": "tiny", "reference": "embedded:neox-tiny"}],
        "objectives": controls,
        "fractions": [0.5, 1.0],
        "evaluation": {**lab["evaluation"], "num_prompts": 16, "max_new_tokens": 10, "batch_size": 16},
    }
    path = tmp_path / "controls.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["sweep", "--config", str(path)]) == 0
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    policy = table[table.objective != "SFT"]
    assert sorted(policy.variant.unique()) == sorted({o["variant"] for o in controls})
    assert len(policy) == len(controls) * 2 * 2  # 2 seeds x 2 checkpoints
    assert set(policy.seed) == {0, 1}
    steps = policy[policy.is_final].groupby("variant").step.max()
    assert steps["quarter4x"] == steps["alpha4"]  # 8 pairs x 4 epochs: the steps of 32 pairs x 1
    assert sorted(policy[policy.variant == "quarter4x"].epoch_fraction.unique()) == [0.5, 1.0]
    for column in ("gold_reward", "gold_relevance", "cut_share", "val_margin", "temperature", "ood_mass"):
        assert policy[column].notna().all(), column
    total = policy.gold_relevance - policy.gold_short_penalty - policy.gold_long_penalty
    assert (total - policy.gold_reward).abs().max() < 1e-9
    sft = table[table.objective == "SFT"].iloc[0]
    assert 0.3 < sft.imitation_win_rate < 0.7  # a second human answer against the first: about a coin flip
    assert (tmp_path / "out" / "workers" / "0.log").is_file() and (tmp_path / "out" / "workers" / "1.log").is_file()


def test_sft_per_seed_end_to_end(tmp_path: Path) -> None:
    """Two seeds, each with its own SFT reference (data draw, order) and the DAA run of that seed on top of it: the
    table has an SFT row per seed, schema-valid."""
    lab = yaml.safe_load((ROOT / "configs" / "sweeps" / "lab.yaml").read_text())
    config = {
        "out_dir": str(tmp_path / "out"),
        "seeds": [0, 1],
        "sft_per_seed": True,
        "fit": {"configs": [str(ROOT / "configs" / "lab" / "daa.yaml")], "overrides": SMALL_FIT},
        "models": [
            {
                "name": "tiny",
                "sft": {
                    "configs": [str(ROOT / "configs" / "lab" / "sft.yaml")],
                    "overrides": {**SMALL_FIT, "trainer.max_epochs": 1, "model.policy": "embedded:neox-tiny"},
                },
            }
        ],
        "objectives": [{"objective": "DPO", "betas": [0.1]}],
        "fractions": [0.5, 1.0],
        "evaluation": {**lab["evaluation"], "num_prompts": 16, "max_new_tokens": 10, "batch_size": 16},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["sweep", "--config", str(path)]) == 0
    out = tmp_path / "out"
    table = pd.read_csv(out / "results.csv")
    assert tuple(table.columns) == COLUMNS and tuple(pd.read_parquet(out / "results.parquet").columns) == COLUMNS
    sft = table[table.objective == "SFT"]
    assert list(sft.run_id) == ["tiny-sft-s0", "tiny-sft-s1"] and list(sft.seed) == [0, 1]
    assert (sft.model == "tiny").all() and sft.beta.isna().all() and (sft.kl == 0).all()
    daa = table[table.objective != "SFT"]
    assert list(daa.run_id) == ["tiny-DPO-beta0.1-s0"] * 2 + ["tiny-DPO-beta0.1-s1"] * 2
    assert list(daa.seed) == [0, 0, 1, 1]
    runs = out / "runs"
    for seed in (0, 1):
        reference = yaml.safe_load((runs / f"tiny-sft-s{seed}" / "fit.yaml").read_text())
        assert reference["seed_everything"] == seed and reference["data"]["source"]["init_args"]["seed"] == seed
        policy = yaml.safe_load((runs / f"tiny-DPO-beta0.1-s{seed}" / "fit.yaml").read_text())["model"]["policy"]
        assert policy == str(runs / f"tiny-sft-s{seed}" / "hf_policy")
    weights = [(runs / f"tiny-sft-s{seed}" / "hf_policy" / "model.safetensors").read_bytes() for seed in (0, 1)]
    assert weights[0] != weights[1], "the two seeds' SFT models should differ"


@pytest.mark.slow
def test_objectives_against_overoptimisation_run_in_a_tiny_configuration(tmp_path: Path) -> None:
    """The lab's chi-PO, DPO-P and KTO (on the pairs split into a desirable and an undesirable row each), one seed, on
    a given reference: each trains, is evaluated (KTO's held-out rows have no pairwise accuracy) and writes rows."""
    lab = yaml.safe_load((ROOT / "configs" / "sweeps" / "lab.yaml").read_text())
    objectives = [o for o in lab["objectives"] if o.get("variant") == "overopt"]
    assert {o["objective"] for o in objectives} == {"ChiPO", "DPOP", "KTO"}
    for objective in objectives:
        objective["betas"], objective["models"] = [0.1], ["tiny"]
    config = {
        "out_dir": str(tmp_path / "out"),
        "seeds": [0],
        "fit": {"configs": [str(ROOT / "configs" / "lab" / "daa.yaml")], "overrides": SMALL_FIT},
        "models": [{"name": "tiny", "reference": "embedded:neox-tiny"}],
        "objectives": objectives,
        "fractions": [1.0],
        "evaluation": {**lab["evaluation"], "num_prompts": 16, "max_new_tokens": 10, "batch_size": 16},
    }
    path = tmp_path / "overopt.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["sweep", "--config", str(path)]) == 0
    policy = pd.read_csv(tmp_path / "out" / "results.csv").query("objective != 'SFT'")
    assert sorted(policy.objective) == ["ChiPO", "DPOP", "KTO"] and set(policy.variant) == {"overopt"}
    assert policy.win_rate.notna().all() and policy.kl.notna().all() and policy.val_loss.notna().all()
    kto = policy[policy.objective == "KTO"].iloc[0]
    assert math.isnan(kto.val_accuracy) and math.isfinite(kto.val_margin)
