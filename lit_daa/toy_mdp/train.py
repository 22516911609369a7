"""Training every objective at every beta on one seeded toy data set, recording the masses at each step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from lit_daa.errors import InputError
from lit_daa.objectives import DPO, IPO, RDPO, SFT, Objective, ObjectiveOutput, SimPO, SLiC
from lit_daa.toy_mdp.mdp import NUM_ACTIONS, TreeMDP
from lit_daa.toy_mdp.pairs import (
    PAIR_SOURCES,
    PreferencePairs,
    pair_logps,
    pair_matrix_rank,
    parameter_pair_rank,
    sample_pairs,
    sample_pairs_from,
)
from lit_daa.toy_mdp.policies import POLICIES, TabularPolicy

# Every objective class in lit_daa.objectives, by class name, for the CLI: the toy trains the very same classes.
OBJECTIVES: dict[str, type[Objective]] = {cls.__name__: cls for cls in (DPO, IPO, SLiC, RDPO, SimPO, SFT)}

# Optimizers by CLI name; both take (params, lr=...).
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}

DEFAULT_DEPTH = 3
DEFAULT_PAIRS = 6
DEFAULT_BETAS = (0.05, 0.1, 0.5, 1.0)
DEFAULT_OBJECTIVES = ("DPO", "IPO", "SLiC")
DEFAULT_STEPS = 300
DEFAULT_LR = 0.05
DEFAULT_SEED = 0

# The quantities each record holds besides its labels, in CSV column order.
RECORD_FIELDS = (
    "objective",
    "beta",
    "step",
    "loss",
    "in_data_mass",
    "out_of_data_mass",
    "chosen_mass",
    "rejected_mass",
    "kl",
    "gold_reward",
    "accuracy",
)


@dataclass
class ToyMDPResult:
    """Everything one `run_toy_mdp` call produced.

    Attributes:
        depth: D.
        num_trajectories: T = 3^D.
        num_free_parameters: the identifiable degrees of freedom of the trained policy (T - 1 for the tabular
            policy, 2D for the shared-depth one).
        pair_rank: rank of the (N, T) pair matrix.
        pairs: the preference data.
        records: one dict per (objective, beta, step) with the keys of `RECORD_FIELDS`; step 0 is the start.
        final_logps: (T,) trajectory log-probs of the trained policy, by (objective class name, beta).
        policy: the `POLICIES` name of the parameterisation that was trained.
        num_trainable_parameters: its number of trainable parameters (3M tabular, 3D shared-depth); 0 = unknown.
        parameter_rank: rank of A J at pi_ref, J the (T, P) Jacobian of log pi in the trainable parameters: the
            parameter directions the loss's gradient can see there; -1 = unknown.
    """

    depth: int
    num_trajectories: int
    num_free_parameters: int
    pair_rank: int
    pairs: PreferencePairs
    records: list[dict[str, float | int | str]] = field(default_factory=list)
    final_logps: dict[tuple[str, float], Tensor] = field(default_factory=dict)
    policy: str = "tabular"
    num_trainable_parameters: int = 0
    parameter_rank: int = -1

    @property
    def num_pairs(self) -> int:
        return int(self.pairs.chosen.numel())

    def final_records(self) -> list[dict[str, float | int | str]]:
        """The last-step record of each (objective, beta) run, in run order."""
        last: dict[tuple[str, float], dict[str, float | int | str]] = {}
        for record in self.records:
            last[(str(record["objective"]), float(record["beta"]))] = record
        return list(last.values())

    def initial_records(self) -> list[dict[str, float | int | str]]:
        """The step-0 record of each (objective, beta) run, in run order."""
        return [record for record in self.records if record["step"] == 0]


def run_toy_mdp(
    depth: int = DEFAULT_DEPTH,
    num_pairs: int = DEFAULT_PAIRS,
    objectives: Sequence[type[Objective]] | type[Objective] = (DPO, IPO, SLiC),
    betas: Sequence[float] = DEFAULT_BETAS,
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    seed: int = DEFAULT_SEED,
    optimizer: str = "adam",
    bradley_terry: bool = False,
    reference_logits: Tensor | None = None,
    reference_in_data_mass: float | None = None,
    reference_rejected_mass: float | None = None,
    policy: str = "tabular",
    reference_scale: float = 0.0,
    pairs_from: str = "uniform",
) -> ToyMDPResult:
    """Train a policy with each objective class at each beta on one seeded preference data set.

    Each run starts from the reference policy and takes `steps` full-batch steps on all N pairs.

    Args:
        depth: D, trajectories have D actions (T = 3^D).
        num_pairs: N preference pairs.
        objectives: lit_daa.objectives classes, each built as ``cls(beta=beta)``; one class is also accepted.
        betas: the KL-constraint strengths to sweep.
        steps: optimizer steps per run.
        lr: learning rate.
        seed: seeds the gold reward and the pairs (training itself is deterministic).
        optimizer: a key of `OPTIMIZERS`.
        bradley_terry: sample preference labels instead of taking the higher gold reward.
        reference_logits: (M, 3) logits of pi_ref; the uniform policy when None.
        reference_in_data_mass: instead of `reference_logits`, an "SFT-like" pi_ref that puts this mass in
            (0, 1) spread evenly over the in-data trajectories and the rest evenly over all of them.
        reference_rejected_mass: instead, a pi_ref that favours the rejected answers: this mass in (0, 1) spread
            evenly over the trajectories rejected in some pair, the rest evenly over all of them (as an SFT model
            whose samples the labellers mostly turned down). With the tabular policy in-data mass then falls.
        policy: a key of `POLICIES`: "tabular" (one logit vector per node, the default) or "shared-depth"
            (reference logits plus a trainable offset shared by all nodes at the same depth).
        reference_scale: when > 0, pi_ref has random logits ``reference_scale * N(0, 1)`` per (node, action),
            drawn from the seed before the data (a peaked reference); 0 keeps the uniform reference.
        pairs_from: "uniform" draws the pairs uniformly over all trajectory pairs (`sample_pairs`);
            "reference" draws them on-policy from pi_ref (`sample_pairs_from`).

    Returns:
        A `ToyMDPResult` with (steps + 1) records per (objective, beta).
    """
    if isinstance(objectives, type):
        objectives = (objectives,)
    if steps < 0:
        raise InputError(f"toy MDP option steps must be >= 0, got {steps}")
    if optimizer not in OPTIMIZERS:
        raise InputError(f"toy MDP option optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    if policy not in POLICIES:
        raise InputError(f"toy MDP option policy must be one of {sorted(POLICIES)}, got {policy!r}")
    if pairs_from not in PAIR_SOURCES:
        raise InputError(f"toy MDP option pairs_from must be one of {list(PAIR_SOURCES)}, got {pairs_from!r}")
    if reference_scale < 0:
        raise InputError(f"toy MDP option reference_scale must be >= 0, got {reference_scale}")
    built = (reference_in_data_mass, reference_rejected_mass)
    given = sum((reference_logits is not None, *(m is not None for m in built), reference_scale > 0))
    if given > 1:
        raise InputError(
            "toy MDP takes one of reference_logits, reference_in_data_mass, reference_rejected_mass, reference_scale"
        )
    if any(m is not None for m in built) and pairs_from == "reference":
        raise InputError("toy MDP's SFT-like reference is built from the pairs, so pairs cannot come from it")
    mdp = TreeMDP(depth)
    generator = torch.Generator().manual_seed(seed)
    if reference_scale > 0:
        reference_logits = reference_scale * torch.randn(mdp.num_nodes, NUM_ACTIONS, generator=generator)
    if pairs_from == "reference":
        with torch.no_grad():
            ref_probs = TabularPolicy(mdp, reference_logits)().exp()
        pairs = sample_pairs_from(ref_probs, num_pairs, generator, bradley_terry=bradley_terry)
    else:
        pairs = sample_pairs(mdp.num_trajectories, num_pairs, generator, bradley_terry=bradley_terry)
    masks = pairs.masks()
    for name, mass, where in (
        ("reference_in_data_mass", reference_in_data_mass, "in_data"),
        ("reference_rejected_mass", reference_rejected_mass, "rejected"),
    ):
        if mass is not None:
            reference_logits = mdp.logits_for(_mass_on(masks[where], mass, name))
    with torch.no_grad():
        ref_logps = TabularPolicy(mdp, reference_logits)()
    policy_cls = POLICIES[policy]
    template = policy_cls(mdp, reference_logits)
    result = ToyMDPResult(
        depth=mdp.depth,
        num_trajectories=mdp.num_trajectories,
        num_free_parameters=template.num_free_parameters,
        pair_rank=pair_matrix_rank(pairs),
        pairs=pairs,
        policy=policy,
        num_trainable_parameters=template.num_trainable_parameters,
        parameter_rank=parameter_pair_rank(template, pairs),
    )
    for objective_cls in objectives:
        for beta in betas:
            objective = objective_cls(beta=beta)
            model = policy_cls(mdp, reference_logits)
            opt = OPTIMIZERS[optimizer](model.parameters(), lr=lr)
            for step in range(steps + 1):
                logps = model()
                out = objective(pair_logps(logps, ref_logps, pairs, mdp.depth))
                result.records.append(_record(objective_cls.__name__, beta, step, out, logps, ref_logps, pairs, masks))
                # The last pass only measures the final policy; it takes no step.
                if step < steps:
                    opt.zero_grad()
                    out.loss.backward()
                    opt.step()
            result.final_logps[(objective_cls.__name__, float(beta))] = logps.detach()
    return result


def _mass_on(mask: Tensor, mass: float, option: str) -> Tensor:
    """(T,) probabilities: `mass` spread evenly over the trajectories in `mask`, the rest evenly over all."""
    if not 0.0 < mass < 1.0:
        raise InputError(f"toy MDP option {option} must be in (0, 1), got {mass}")
    selected = mask.float()
    return mass * selected / selected.sum() + (1.0 - mass) / mask.numel()


def _record(
    name: str,
    beta: float,
    step: int,
    out: ObjectiveOutput,
    logps: Tensor,
    ref_logps: Tensor,
    pairs: PreferencePairs,
    masks: dict[str, Tensor],
) -> dict[str, float | int | str]:
    """One row of tracked quantities for the policy with (T,) trajectory log-probs `logps`."""
    with torch.no_grad():
        probs = logps.exp()
        return {
            "objective": name,
            "beta": float(beta),
            "step": step,
            "loss": float(out.loss),
            "in_data_mass": float(probs[masks["in_data"]].sum()),
            "out_of_data_mass": float(probs[masks["out_of_data"]].sum()),
            "chosen_mass": float(probs[masks["chosen"]].sum()),
            "rejected_mass": float(probs[masks["rejected"]].sum()),
            "kl": float((probs * (logps - ref_logps)).sum()),
            "gold_reward": float((probs * pairs.gold_reward).sum()),
            "accuracy": float((out.chosen_rewards > out.rejected_rewards).float().mean()),
        }


def run_seeds(seeds: Sequence[int], **options: object) -> list[ToyMDPResult]:
    """`run_toy_mdp(seed=s, **options)` for every seed: a new gold reward and new pairs each time."""
    return [run_toy_mdp(seed=seed, **options) for seed in seeds]  # type: ignore[arg-type]
