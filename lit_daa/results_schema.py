"""The results table of a sweep, in one place: its columns, their types and meanings (docs/results_schema.md).

`sweep.table` writes it, `evaluation.evaluate` and `sweep.evaluation` fill it, `analysis.results` reads it; each
takes the column names from here, so adding a column is one line below.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

REFERENCE_OBJECTIVE = "SFT"  # the objective name of a size's reference row (its d = 0 point)


@dataclass(frozen=True)
class Column:
    """One column: its name, Arrow type and meaning (the meaning is what docs/results_schema.md prints)."""

    name: str
    type: pa.DataType
    meaning: str

    @property
    def numeric(self) -> bool:
        return pa.types.is_floating(self.type) or pa.types.is_integer(self.type)


COLUMN_LIST: tuple[Column, ...] = (
    Column(
        "run_id",
        pa.string(),
        "`{model}-{objective}[-{variant}]-beta{beta}[-s{seed}]`; `{model}-sft[-s{seed}]` for the reference",
    ),
    Column("objective", pa.string(), "objective name (`DPO`, `IPO`, `SLiC`, ...; `SFT` for the reference row)"),
    Column(
        "variant", pa.string(), "the experiment a run belongs to: empty for the main grid, else a control or ablation"
    ),
    Column("beta", pa.float64(), "the objective's beta (NaN for the reference row)"),
    Column(
        "seed", pa.int64(), "training seed (data draw and order); a reference row: its seed with `sft_per_seed`, else 0"
    ),
    Column("model", pa.string(), "model size name from the sweep config (e.g. `tiny`, `small`)"),
    Column("params", pa.int64(), "number of policy parameters"),
    Column("step", pa.int64(), "optimizer steps at the checkpoint"),
    Column("examples_seen", pa.int64(), "preference pairs seen at the checkpoint"),
    Column(
        "epoch_fraction",
        pa.float64(),
        "examples_seen / pairs of the whole run (trainer.max_epochs x pairs in one epoch: for the usual one-epoch "
        "run, pairs in one epoch); 0 for the reference row",
    ),
    Column("is_final", pa.bool_(), "the run's last checkpoint (the end of its one epoch, or of its last)"),
    Column(
        "kl", pa.float64(), "KL(pi \\|\\| pi_ref): mean over prompts of the summed log-ratio of the policy's samples"
    ),
    Column("kl_stderr", pa.float64(), "standard error of that mean"),
    Column("sqrt_kl", pa.float64(), "sqrt(max(kl, 0)), the paper's x-axis d"),
    Column("forward_kl", pa.float64(), "KL(pi_ref \\|\\| pi) from reference samples (Eq. 7 check)"),
    Column("forward_kl_stderr", pa.float64(), "its standard error"),
    Column("temperature", pa.float64(), "sampling temperature (1: the samples are the policy's own, kl is a KL)"),
    Column("cut_share", pa.float64(), "share of policy samples cut at max_new_tokens (no EOS); their KL is truncated"),
    Column("win_rate", pa.float64(), "(wins + ties/2) / judged, samples vs the human reference responses"),
    Column("win_rate_stderr", pa.float64(), "binomial standard error"),
    Column("ties", pa.int64(), "judged ties"),
    Column("invalid", pa.int64(), "unparseable or failed judgements (excluded from win_rate)"),
    Column("mean_length", pa.float64(), "mean response length of the samples, in tokens (EOS included)"),
    Column("length_r2", pa.float64(), "R^2 of regressing the samples' implicit reward (beta log pi/pi_ref) on length"),
    Column(
        "ood_mass",
        pa.float64(),
        "out-of-data mass: mean over every token y_t of the policy's samples (pooled over samples, EOS included) of "
        "the sum of pi(v given x, y_<t) over the tokens v of the policy's vocabulary that occur in no training answer "
        "(chosen or rejected) of the evaluation's `training_data` (EOS and pad count as in-data; pi at temperature "
        "1); NaN without `training_data`",
    ),
    Column(
        "ood_token_share",
        pa.float64(),
        "share of the policy samples' tokens (pooled, EOS included) that occur in no training answer (the token set "
        "of ood_mass); NaN without `training_data`",
    ),
    Column("gold_reward", pa.float64(), "mean gold reward of the samples (judges with a known reward only)"),
    Column("gold_relevance", pa.float64(), "its relevance term: on-topic minus off-topic words, weighted"),
    Column("gold_short_penalty", pa.float64(), "its penalty for answers shorter than the target length"),
    Column("gold_long_penalty", pa.float64(), "its penalty for answers longer than the target length"),
    Column("imitation_win_rate", pa.float64(), "reference rows: win rate of a second human answer (an exact imitator)"),
    Column("val_accuracy", pa.float64(), "held-out implicit-reward accuracy"),
    Column("val_loss", pa.float64(), "held-out DAA loss"),
    Column("val_margin", pa.float64(), "held-out mean implicit-reward margin beta (h_chosen - h_rejected)"),
    Column("chosen_logratio", pa.float64(), "mean log pi/pi_ref of held-out chosen answers (Eq. 7: about -forward_kl)"),
)
SCHEMA: dict[str, pa.DataType] = {c.name: c.type for c in COLUMN_LIST}
COLUMNS: tuple[str, ...] = tuple(SCHEMA)
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMN_LIST if c.numeric)
FLOAT_COLUMNS: frozenset[str] = frozenset(c.name for c in COLUMN_LIST if pa.types.is_floating(c.type))
# Without these no analysis can run; the others only switch single analyses off.
REQUIRED_COLUMNS = ("run_id", "objective", "beta", "model", "epoch_fraction", "is_final", "win_rate")


def markdown() -> str:
    """The column table of docs/results_schema.md."""
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| {c.name} | {c.type} | {c.meaning} |" for c in COLUMN_LIST]
    return "\n".join(lines)
