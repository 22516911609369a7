"""What a rerun compares with the sweep stored in its out_dir, so that rows of two settings never mix in one table.

The sweep saves its resolved config as `<out_dir>/sweep.yaml` and each run's evaluated checkpoints as
`<run>/evals/*.json` (read back, not recomputed, on a rerun). A rerun whose `evaluation:` options differ from the
stored ones would keep the old rows and add new ones made another way; it is refused unless `--reevaluate` drops
the stored evaluations first (the trained checkpoints stay). Fit options are compared per run by
`sweep.fit_config` (the sources recorded in each fit.yaml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lit_daa.errors import InputError
from lit_daa.sweep.runs import Run
from lit_daa.sweep.spec_file import read_yaml_mapping

SHOWN_VALUE_CHARS = 40  # longer values (a judge template) are named, not printed


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Nested mappings as dotted keys: {"judge": {"class_path": x}} -> {"evaluation.judge.class_path": x}."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(flatten(item, f"{prefix}.{key}"))
    return flat


def evaluation_changes(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The evaluation options whose values differ between two saved sweep configs, as "option old -> new".

    Options present in only one of them are left out: a stored file from an older lit-daa lacks options added
    since, whose defaults reproduce the old behaviour.
    """
    old = flatten(stored.get("evaluation") or {}, "evaluation")
    new = flatten(current.get("evaluation") or {}, "evaluation")
    changes = []
    for key in sorted(old.keys() & new.keys()):
        if old[key] != new[key]:
            shown = f"{old[key]!r} -> {new[key]!r}"
            changes.append(key if len(shown) > SHOWN_VALUE_CHARS else f"{key} {shown}")
    return changes


def check_evaluation_options(saved: Path, current: dict[str, Any], runs: list[Run], source: str) -> None:
    """Refuse, in one sentence, a rerun whose evaluation options differ from those the stored evaluations were
    made with (`saved`: the out_dir's sweep.yaml; nothing to compare when it or every stored evaluation is absent)."""
    if not saved.is_file() or not any(run.evaluated for run in runs):
        return
    changes = evaluation_changes(read_yaml_mapping(saved, "stored sweep config"), current)
    if changes:
        raise InputError(
            f"the sweep in {saved.parent} was evaluated with other evaluation options than {source} gives now "
            f"({'; '.join(changes)}); pass --reevaluate to evaluate its trained checkpoints again with the new ones "
            "(no training is repeated), or choose another out_dir"
        )


def drop_evaluations(runs: list[Run]) -> int:
    """Remove every stored evaluation of `runs` (their rows are recomputed from the checkpoints); returns how many
    runs had some."""
    dropped = 0
    for run in runs:
        if run.evaluated:
            run.drop_evaluations()
            dropped += 1
    return dropped
