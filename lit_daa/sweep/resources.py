"""What a run asks SLURM for: nodes, tasks (= Lightning processes) per node and GPUs per node, from its fit config.

Lightning's SLURM environment starts one rank per SLURM task, so a fit with `trainer.num_nodes` N and
`trainer.devices` G needs `--nodes=N --ntasks-per-node=G` (and G GPUs per node), launched with `srun`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lit_daa.sweep.runs import Run


@dataclass(frozen=True)
class Resources:
    """A run's SLURM shape; the default (1 node, 1 task, no GPU option) adds nothing to the script's #SBATCH lines.

    Args:
        nodes: `trainer.num_nodes`.
        tasks_per_node: `trainer.devices` as a number (1 when it is "auto" or a list the sweep cannot count).
        gpus_per_node: GPUs per node for a GPU run, else 0 (the script's own directives then decide).
    """

    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: int = 0

    def sbatch_options(self) -> list[str]:
        """Options for `sbatch` (they override the script's #SBATCH lines for this array)."""
        if self == Resources():
            return []
        options = [f"--nodes={self.nodes}", f"--ntasks-per-node={self.tasks_per_node}"]
        return options + ([f"--gpus-per-node={self.gpus_per_node}"] if self.gpus_per_node else [])

    def label(self) -> str:
        gpus = f", {self.gpus_per_node} GPU(s) per node" if self.gpus_per_node else ""
        return f"{self.nodes} node(s) x {self.tasks_per_node} task(s){gpus}"


def resources_of(run: Run) -> Resources:
    """The resources of a run's fit, read from its fit.yaml (resolved now if needed) as `lit-daa fit` reads it."""
    path = run.fit_config()
    if path is None:
        return Resources()
    from lit_daa.sweep.fit_config import read_fit_config

    trainer = read_fit_config(path).trainer
    devices = trainer.devices
    if isinstance(devices, str) and devices.lstrip("-").isdigit():
        devices = int(devices)
    tasks = devices if isinstance(devices, int) and devices > 0 else len(devices) if isinstance(devices, list) else 1
    accelerator = str(trainer.accelerator)
    gpu = accelerator in ("gpu", "cuda") or accelerator.endswith("CUDAAccelerator")
    return Resources(nodes=int(trainer.num_nodes or 1), tasks_per_node=tasks, gpus_per_node=tasks if gpu else 0)
