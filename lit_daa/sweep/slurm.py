"""A SLURM array script for a sweep: one array task per run, references before the DAA runs that need them.

The script is its own submitter. `bash sweep.sbatch` submits three jobs: an array over the references, an array
over the DAA runs that starts after the first succeeded (`afterok`), and a small job that rebuilds the results
table after the second (`afterany`). Writing the script resolves every run's `<run>/fit.yaml` (`sweep.fit_config`).
Inside an array task it skips a finished run (DONE.json), trains a run whose fit has not finished with
`lit-daa fit --config <run>/fit.yaml` (adding `--ckpt_path=last` when a killed attempt left a checkpoint), then runs
`lit-daa sweep --config ... --only_run $SLURM_ARRAY_TASK_ID --stage evaluate`, which records the finished fit and
evaluates it; so resubmitting is always safe. Multi-GPU training goes through Lightning's own strategies: set
trainer.devices/num_nodes/strategy in the fit config, add the matching #SBATCH lines (e.g. --ntasks-per-node equal
to the devices) and keep `srun` in the command, so that Lightning reads the SLURM environment.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from lit_daa.sweep.config import SlurmSpec
from lit_daa.sweep.fit_config import FIT_CONFIG
from lit_daa.sweep.resources import Resources, resources_of
from lit_daa.sweep.runs import DONE, FIT_DONE, ReferenceRun, Run


def slurm_script(
    runs: list[Run],
    config_path: str,
    spec: SlurmSpec,
    out_dir: str,
    workdir: str,
    resources: Callable[[Run], Resources] = resources_of,
) -> str:
    """The text of the array script (see the module docstring); `resources(run)` gives each run's shape.

    Every trained run's fit.yaml is resolved (if it is not yet) while the script is written.
    """
    references = [run for run in runs if isinstance(run, ReferenceRun)]
    others = [run for run in runs if not isinstance(run, ReferenceRun)]
    logs = Path(out_dir) / "slurm"
    config, work = shlex.quote(config_path), shlex.quote(workdir)
    collect = "; ".join([f"cd {work}", *spec.setup, f"lit-daa sweep --config {config} --collect"])
    lines = [
        "#!/bin/bash",
        f"# lit-daa sweep {config_path}: {len(references)} reference run(s) ({_span(references)}),",
        f"# {len(others)} DAA run(s) ({_span(others)}), one SLURM array task each.",
        "# Submit with:  bash THIS_SCRIPT   (references first, DAA runs after them, then the results table)",
        "#SBATCH --job-name=lit-daa-sweep",
        f"#SBATCH --output={logs}/%A_%a.out",
        *[f"#SBATCH {directive}" for directive in spec.directives],
        "set -euo pipefail",
        'script="$(realpath "$0")"',
        f"cd {work}",
        'if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then',
        f"    mkdir -p {shlex.quote(str(logs))}",
    ]
    lines += _submit_groups("refs", references, resources, dependency=None)
    if others:
        lines += _submit_groups("runs", others, resources, dependency='afterok:"$refs"')
        lines.append('    last="$runs"')
    else:
        lines.append('    last="$refs"')
    lines += [
        f'    sbatch --dependency=afterany:"$last" --job-name=lit-daa-sweep-collect --output={logs}/collect-%j.out \\',
        f"        --wrap={shlex.quote(collect)}",
        '    echo "submitted the sweep (last array job(s) $last)"',
        "    exit 0",
        "fi",
        *spec.setup,
        "# each task's run folder; a run with a fit.yaml is trained with `lit-daa fit --config <run>/fit.yaml`",
        "runs=(",
        *[f"    [{run.index}]={shlex.quote(str(run.root.resolve()))}" for run in runs],
        ")",
        'run="${runs[$SLURM_ARRAY_TASK_ID]}"',
        f'if [ -f "$run/{DONE}" ]; then',
        '    echo "$run is finished"',
        "    exit 0",
        "fi",
        f'if [ -f "$run/{FIT_CONFIG}" ] && [ ! -f "$run/{FIT_DONE}" ]; then',
        '    resume=""',
        '    if [ -f "$run/checkpoints/last.ckpt" ]; then resume="--ckpt_path=last"; fi',
        f'    {spec.command} fit --config "$run/{FIT_CONFIG}" $resume',
        "fi",
        f'{spec.command} sweep --config {config} --only_run "$SLURM_ARRAY_TASK_ID" --stage evaluate',
        "",
    ]
    for run in runs:
        run.fit_config()  # resolve now: the tasks train from these files
    return "\n".join(lines)


def _submit_groups(
    name: str, runs: list[Run], resources: Callable[[Run], Resources], dependency: str | None
) -> list[str]:
    """Shell lines submitting one array per resource shape; `$name` ends as their job ids joined by ':'."""
    groups: dict[Resources, list[Run]] = {}
    for run in runs:
        groups.setdefault(resources(run), []).append(run)
    lines = [f'    {name}=""']
    for shape, members in groups.items():
        options = " ".join([*shape.sbatch_options(), f"--array={_span(members)}"])
        after = f"--dependency={dependency} " if dependency else ""
        lines += [
            f"    # {len(members)} run(s) on {shape.label()}",
            f'    job=$(sbatch --parsable {after}{options} "$script")',
            f'    {name}="${{{name}:+${name}:}}${{job%%;*}}"  # --parsable: "jobid;cluster" on some sites',
        ]
    return lines


def _span(runs: list[Run]) -> str:
    """SLURM's array syntax for the runs' indices: ranges of consecutive indices, comma-separated."""
    indices = sorted(run.index for run in runs)
    if not indices:
        return "none"
    parts, start = [], indices[0]
    for previous, current in zip(indices, [*indices[1:], None], strict=True):
        if current != previous + 1:
            parts.append(f"{start}-{previous}" if previous != start else f"{start}-{start}")
            start = current
    return ",".join(parts)
