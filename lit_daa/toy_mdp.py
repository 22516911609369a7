"""The toy tree MDP of Rafailov et al. 2024 (section 4, Figs. 5-6): where DAAs put mass the data never saw.

The MDP. A depth-D tree: every state offers three deterministic actions, the states are all action prefixes of
length < D (the internal nodes), and after D actions the episode absorbs into a terminal state. A trajectory is
therefore a sequence of D actions and there are T = 3^D of them, indexed 0..T-1 by reading the actions as a
base-3 number (first action most significant). The policy is tabular softmax: one logit vector (3,) per
internal node, M = 3^0 + ... + 3^(D-1) = (T - 1) / 2 nodes, and log pi(trajectory) is the sum of the
log-softmax along its path. The M x 3 logits have 2M = T - 1 identifiable degrees of freedom, exactly those of a
distribution over T trajectories, so the tabular policy can represent any trajectory distribution (the
training dynamics, not the parameterisation, decide where mass goes).

Preference data (our choice, the paper did not publish it). A gold reward per trajectory is drawn N(0, 1) with
the seed. N distinct unordered pairs of distinct trajectories are sampled uniformly without replacement and
labelled deterministically: the trajectory with the higher gold reward is chosen. Deterministic labels keep
label noise out of the picture, so only the loss's structure and the optimiser move the mass;
``bradley_terry=True`` samples labels with P(a preferred to b) = sigmoid(r_a - r_b) instead.

The rank argument. For N pairs the DAA loss sees the policy only through h = A (log pi - log pi_ref), where A
is the (N, T) pair matrix with +1 at the chosen and -1 at the rejected trajectory of each pair. rank(A) <= N,
and for N << T the loss is flat along T - 1 - rank(A) directions of the policy: it has infinitely many
minimisers, including ones with almost all mass on trajectories in no pair (`loss_equivalent_logps` builds one:
scaling every in-data probability by the same factor leaves every h, hence the loss, unchanged).

What gradient training actually does here (measured, and at odds with the paper's Fig. 6 as summarised in
PAPER.md). Which minimiser training reaches is decided by the optimiser, not the loss. At small beta every
objective is close to linear in h (DPO: log 2 - beta/2 sum_i h_i), i.e. it maximises sum_t c_t log pi(t) with
c_t = (times t is chosen) - (times t is rejected). With a fully expressive tabular policy started at the
reference, that pushes the net losers to zero and puts the mass on the net winners (c_t > 0); out-of-data
trajectories (c_t = 0) only move through the prefixes they share with data trajectories, and lose mass overall.
So with the defaults below in-data mass RISES (0.37 -> 0.99 for DPO at beta 0.05) and out-of-data mass falls;
larger beta stops earlier and leaves more out of the data. We tried uniform and SFT-like references (mass on the
data trajectories), data sampled from a peaked reference, Bradley-Terry labels, repeated pairs, depths 2-4,
3-24 pairs, Adam and SGD: in-data mass fell in 2 of about 500 random configurations (DPO, beta 0.05).
Reproducing the paper's effect needs an ingredient it did not publish: a policy that shares parameters across
trajectories (next paragraph).

The shared-depth policy (``--policy shared-depth``, `SharedDepthPolicy`). logits(state) = reference_logits(state)
+ w[depth(state)], with a trainable offset w of shape (D, 3) shared by every state at the same depth: 3D trainable
parameters (2D free), not 3M. With a peaked random reference (``--reference-scale S``: logits S * N(0, 1) per
(node, action)) and pairs sampled on-policy from the reference (``--pairs-from reference``, as in the paper's
pipeline), pushing down a rejected trajectory's actions also pushes down every trajectory taking those actions at
those depths, and the policy cannot single the chosen ones out; at small beta the in-data mass falls and the
out-of-data mass rises, as in the paper. Recommended run (depth 3, 4 pairs of rank 4, so the loss sees 4 of the 6
free parameter directions; seed 9, DPO at beta 0.05 and 0.1 take in-data mass 0.70 -> 0.00, beta 1 stops at
0.12; IPO and SLiC at beta >= 0.5 keep much more in the data)::

  lit-daa toy-mdp --policy shared-depth --reference-scale 1 --pairs 4 --pairs-from reference --seed 9 --out runs/toy_mdp

Seed 9 is typical, not a lucky outlier: over seeds 0-19 with these settings, DPO at beta 0.05 and at 0.1 both
lower in-data mass by more than 0.05 in 14 of 20 seeds (22 of 30 over seeds 0-29); reference scales 2-3 and 6
pairs give 9-16 of 20. The tabular default (``--policy tabular``) is unchanged.

Defaults (depth 3 = 27 trajectories, 13 nodes, 26 free parameters; 6 pairs, rank 6; DPO, IPO and SLiC at beta
in {0.05, 0.1, 0.5, 1.0}; full-batch Adam, lr 0.05, 300 steps; seed 0; uniform reference, which is also the
initial policy) keep the run to a few seconds and show the rank facts and the mass dynamics side by side.

Tracked per step (step 0 is the initial policy): the DAA loss, the probability mass on trajectories that appear
in some pair (in-data) and in none (out-of-data), the mass on trajectories that are chosen in some pair and on
those rejected in some pair (a trajectory may be both, so these two can overlap), KL(pi || pi_ref), the expected
gold reward under pi, and the implicit-reward accuracy on the pairs.

Run ``python -m lit_daa.toy_mdp --out DIR`` (or ``lit-daa toy-mdp``) for the table, ``toy_mdp.png`` and ``toy_mdp.csv``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_daa.errors import InputError
from lit_daa.objectives import DPO, IPO, RDPO, SFT, Objective, ObjectiveOutput, PairLogps, SimPO, SLiC

NUM_ACTIONS = 3

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


class TreeMDP:
    """Index tables of the depth-D, three-action tree.

    Args:
        depth: D >= 1, the number of actions in a trajectory.

    Attributes:
        depth: D.
        num_trajectories: T = 3^D.
        num_nodes: M = (3^D - 1) / 2 internal nodes (states where an action is taken).
        node_index: (T, D) long, the internal node visited at each step of each trajectory.
        action_index: (T, D) long, the action taken there (0, 1 or 2).
    """

    def __init__(self, depth: int) -> None:
        if depth < 1:
            raise InputError(f"toy MDP option depth must be >= 1, got {depth}")
        self.depth = int(depth)
        self.num_trajectories = NUM_ACTIONS**depth
        self.num_nodes = (self.num_trajectories - 1) // (NUM_ACTIONS - 1)
        traj = torch.arange(self.num_trajectories).unsqueeze(1)  # (T, 1)
        level = torch.arange(depth).unsqueeze(0)  # (1, D)
        # The prefix of length l of trajectory t is t // 3^(D-l); level-l nodes start at (3^l - 1) / 2 in a
        # breadth-first numbering, so node = offset(l) + prefix. The action at step l is digit l of t.
        prefix = traj // NUM_ACTIONS ** (depth - level)
        offset = (NUM_ACTIONS**level - 1) // (NUM_ACTIONS - 1)
        self.node_index = offset + prefix
        self.action_index = (traj // NUM_ACTIONS ** (depth - 1 - level)) % NUM_ACTIONS
        # (M,) long, the depth (level) of each internal node in the breadth-first numbering.
        self.node_level = torch.cat(
            [torch.full((NUM_ACTIONS**lvl,), lvl, dtype=torch.long) for lvl in range(self.depth)]
        )

    @property
    def num_free_parameters(self) -> int:
        """2M = T - 1: each softmax over three actions has two identifiable degrees of freedom."""
        return self.num_nodes * (NUM_ACTIONS - 1)

    def logits_for(self, probs: Tensor) -> Tensor:
        """Tree logits whose policy has the given trajectory distribution (the tree policy is fully expressive).

        Args:
            probs: (T,) non-negative trajectory probabilities summing to 1.

        Returns:
            (M, 3) logits: at each node, the log of the mass of each action's subtree (softmax renormalises).
        """
        if tuple(probs.shape) != (self.num_trajectories,):
            raise InputError(f"toy MDP trajectory probabilities must have shape ({self.num_trajectories},)")
        logits = torch.empty(self.num_nodes, NUM_ACTIONS)
        for level in range(self.depth):
            # Rows: the 3^level nodes of this level in order; columns: the three child subtrees.
            mass = probs.reshape(NUM_ACTIONS**level, NUM_ACTIONS, -1).sum(dim=-1)
            offset = (NUM_ACTIONS**level - 1) // (NUM_ACTIONS - 1)
            # A floor keeps empty subtrees finite; their probability stays ~1e-30 of the node's.
            logits[offset : offset + NUM_ACTIONS**level] = mass.clamp_min(1e-30).log()
        return logits

    def trajectory_logps(self, logits: Tensor) -> Tensor:
        """Log-probabilities of all trajectories.

        Args:
            logits: (M, 3) one logit vector per internal node.

        Returns:
            (T,) log pi(trajectory) = sum over the path of log-softmax(logits[node])[action].
        """
        node_logps = F.log_softmax(logits, dim=-1)  # (M, 3)
        return node_logps[self.node_index, self.action_index].sum(dim=-1)


def initial_logits(mdp: TreeMDP, init_logits: Tensor | None) -> Tensor:
    """(M, 3) float copy of `init_logits`, or zeros (the uniform policy) when None; checks the shape."""
    shape = (mdp.num_nodes, NUM_ACTIONS)
    init = torch.zeros(shape) if init_logits is None else init_logits.detach().clone().float()
    if tuple(init.shape) != shape:
        raise InputError(f"toy MDP logits must have shape {shape}, got {tuple(init.shape)}")
    return init


class TabularPolicy(nn.Module):
    """Tabular softmax policy on a `TreeMDP`: every internal node has its own trainable logit vector.

    Args:
        mdp: the tree.
        init_logits: (M, 3) starting logits; zeros (the uniform policy) when None. Copied, not shared.
    """

    name = "tabular"

    def __init__(self, mdp: TreeMDP, init_logits: Tensor | None = None) -> None:
        super().__init__()
        self.mdp = mdp
        init = initial_logits(mdp, init_logits)
        self.logits = nn.Parameter(init)

    @property
    def num_trainable_parameters(self) -> int:
        """3M: one logit per (node, action)."""
        return self.mdp.num_nodes * NUM_ACTIONS

    @property
    def num_free_parameters(self) -> int:
        """2M = T - 1 identifiable degrees of freedom (a softmax ignores a shared shift)."""
        return self.mdp.num_free_parameters

    def forward(self) -> Tensor:
        """(T,) log-probabilities of all trajectories."""
        return self.mdp.trajectory_logps(self.logits)


class SharedDepthPolicy(nn.Module):
    """A policy that shares its trainable parameters across states: logits(s) = init_logits(s) + w[depth(s)].

    The fixed per-node logits (normally the reference's) are a buffer; the only trainable parameter is the
    offset w of shape (D, 3), shared by all 3^l nodes at depth l. So the policy has 3D trainable parameters (2D
    identifiable) however many trajectories there are, and a gradient step driven by the pairs moves every
    trajectory that takes the same action at the same depth, including those in no pair.

    Args:
        mdp: the tree.
        init_logits: (M, 3) fixed per-node logits; zeros (the uniform policy) when None. Copied, not shared.
    """

    name = "shared-depth"

    def __init__(self, mdp: TreeMDP, init_logits: Tensor | None = None) -> None:
        super().__init__()
        self.mdp = mdp
        init = initial_logits(mdp, init_logits)
        self.register_buffer("base_logits", init)
        self.offset = nn.Parameter(torch.zeros(mdp.depth, NUM_ACTIONS))

    @property
    def num_trainable_parameters(self) -> int:
        """3D: one offset per (depth, action)."""
        return self.mdp.depth * NUM_ACTIONS

    @property
    def num_free_parameters(self) -> int:
        """2D identifiable degrees of freedom (each depth's offset is only defined up to a shared shift)."""
        return self.mdp.depth * (NUM_ACTIONS - 1)

    @property
    def logits(self) -> Tensor:
        """(M, 3) the current per-node logits."""
        return self.base_logits + self.offset[self.mdp.node_level]

    def forward(self) -> Tensor:
        """(T,) log-probabilities of all trajectories."""
        return self.mdp.trajectory_logps(self.logits)


# Policy parameterisations by CLI name; each is built as ``cls(mdp, reference_logits)`` so it starts at pi_ref.
POLICIES: dict[str, type[TabularPolicy] | type[SharedDepthPolicy]] = {
    cls.name: cls for cls in (TabularPolicy, SharedDepthPolicy)
}

# Where the pairs' trajectories come from (see `sample_pairs` and `sample_pairs_from`).
PAIR_SOURCES = ("uniform", "reference")


@dataclass
class PreferencePairs:
    """N labelled pairs of distinct trajectories.

    Attributes:
        chosen: (N,) long, index of the preferred trajectory of each pair.
        rejected: (N,) long, index of the other one.
        gold_reward: (T,) the gold reward of every trajectory.
    """

    chosen: Tensor
    rejected: Tensor
    gold_reward: Tensor

    @property
    def num_trajectories(self) -> int:
        return int(self.gold_reward.numel())

    def pair_matrix(self) -> np.ndarray:
        """(N, T) float matrix with +1 at each pair's chosen and -1 at its rejected trajectory."""
        matrix = np.zeros((self.chosen.numel(), self.num_trajectories))
        rows = np.arange(self.chosen.numel())
        matrix[rows, self.chosen.numpy()] = 1.0
        matrix[rows, self.rejected.numpy()] = -1.0
        return matrix

    def masks(self) -> dict[str, Tensor]:
        """(T,) boolean masks: "in_data", "out_of_data", "chosen" (chosen in some pair), "rejected"."""
        chosen = torch.zeros(self.num_trajectories, dtype=torch.bool)
        rejected = torch.zeros_like(chosen)
        chosen[self.chosen] = True
        rejected[self.rejected] = True
        in_data = chosen | rejected
        return {"in_data": in_data, "out_of_data": ~in_data, "chosen": chosen, "rejected": rejected}


def sample_pairs(
    num_trajectories: int, num_pairs: int, generator: torch.Generator, bradley_terry: bool = False
) -> PreferencePairs:
    """Draw a gold reward per trajectory and `num_pairs` distinct labelled pairs (see the module docstring).

    Args:
        num_trajectories: T.
        num_pairs: N, at most T (T - 1) / 2.
        generator: the seeded source of all randomness here.
        bradley_terry: sample labels from sigmoid(r_a - r_b) instead of taking the higher gold reward.
    """
    max_pairs = num_trajectories * (num_trajectories - 1) // 2
    if not 1 <= num_pairs <= max_pairs:
        raise InputError(f"toy MDP option pairs must be in [1, {max_pairs}] for {num_trajectories} trajectories")
    gold = torch.randn(num_trajectories, generator=generator)
    # All unordered pairs a < b, then a seeded choice without replacement, so no pair repeats.
    first, second = torch.triu_indices(num_trajectories, num_trajectories, offset=1)
    pick = torch.randperm(first.numel(), generator=generator)[:num_pairs]
    a, b = first[pick], second[pick]
    if bradley_terry:
        a_wins = torch.rand(num_pairs, generator=generator) < torch.sigmoid(gold[a] - gold[b])
    else:
        a_wins = gold[a] > gold[b]
    return PreferencePairs(torch.where(a_wins, a, b), torch.where(a_wins, b, a), gold)


def sample_pairs_from(
    probs: Tensor, num_pairs: int, generator: torch.Generator, bradley_terry: bool = False
) -> PreferencePairs:
    """Like `sample_pairs`, but the pairs are drawn on-policy from a trajectory distribution (the reference).

    The gold reward is drawn N(0, 1) per trajectory as in `sample_pairs`; then `num_pairs` distinct unordered
    pairs {a, b}, a != b, are drawn without replacement with weight probs[a] * probs[b] (two independent draws
    from the distribution, conditioned on being distinct and new), and labelled as in `sample_pairs`.

    Args:
        probs: (T,) trajectory probabilities, e.g. of pi_ref.
        num_pairs: N, at most T (T - 1) / 2.
        generator: the seeded source of all randomness here.
        bradley_terry: sample labels from sigmoid(r_a - r_b) instead of taking the higher gold reward.
    """
    num_trajectories = int(probs.numel())
    max_pairs = num_trajectories * (num_trajectories - 1) // 2
    if not 1 <= num_pairs <= max_pairs:
        raise InputError(f"toy MDP option pairs must be in [1, {max_pairs}] for {num_trajectories} trajectories")
    gold = torch.randn(num_trajectories, generator=generator)
    first, second = torch.triu_indices(num_trajectories, num_trajectories, offset=1)
    weights = (probs[first] * probs[second]).double().clamp_min(1e-300)
    pick = torch.multinomial(weights, num_pairs, replacement=False, generator=generator)
    a, b = first[pick], second[pick]
    if bradley_terry:
        a_wins = torch.rand(num_pairs, generator=generator) < torch.sigmoid(gold[a] - gold[b])
    else:
        a_wins = gold[a] > gold[b]
    return PreferencePairs(torch.where(a_wins, a, b), torch.where(a_wins, b, a), gold)


def pair_matrix_rank(pairs: PreferencePairs) -> int:
    """Rank of the (N, T) pair matrix: the number of independent directions the loss can see."""
    return int(np.linalg.matrix_rank(pairs.pair_matrix()))


def parameter_pair_rank(policy: nn.Module, pairs: PreferencePairs) -> int:
    """Rank of A J, J the (T, P) Jacobian of the policy's trajectory log-probs in its trainable parameters.

    The loss sees the parameters only through h = A (log pi - log pi_ref), so near the current parameters it is
    flat along (free parameters - this rank) directions of the parameters.
    """
    params = [p for p in policy.parameters() if p.requires_grad]
    logps = policy()
    rows = []
    for t in range(logps.numel()):
        grads = torch.autograd.grad(logps[t], params, retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    jacobian = torch.stack(rows).double().numpy()
    return int(np.linalg.matrix_rank(pairs.pair_matrix() @ jacobian))


def loss_equivalent_logps(logps: Tensor, in_data: Tensor, in_data_mass: float) -> Tensor:
    """Another policy that every DAA loss scores exactly like `logps`, with a chosen in-data mass.

    All in-data probabilities are scaled by one factor and the out-of-data ones by another so that the in-data
    mass becomes `in_data_mass`. Every in-data log-ratio moves by the same constant, so each pair margin h (a
    difference of two in-data log-ratios) is unchanged: a direction along which the loss is flat.

    Args:
        logps: (T,) trajectory log-probabilities with some mass both in and out of the data.
        in_data: (T,) boolean mask of the trajectories that appear in some pair.
        in_data_mass: the in-data mass of the returned policy, in (0, 1).

    Returns:
        (T,) trajectory log-probabilities (a distribution; `TreeMDP.logits_for` turns it into tree logits).
    """
    if not 0.0 < in_data_mass < 1.0:
        raise InputError(f"in_data_mass must be in (0, 1), got {in_data_mass}")
    probs = logps.detach().exp()
    current = probs[in_data].sum()
    if not 0.0 < float(current) < 1.0:
        raise InputError("the policy needs some mass both in and out of the data to rescale them")
    shift_in = torch.log(torch.as_tensor(in_data_mass, dtype=logps.dtype) / current)
    shift_out = torch.log(torch.as_tensor(1.0 - in_data_mass, dtype=logps.dtype) / (1.0 - current))
    return logps.detach() + torch.where(in_data, shift_in, shift_out)


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


def pair_logps(logps: Tensor, ref_logps: Tensor, pairs: PreferencePairs, depth: int) -> PairLogps:
    """Build the objective input for all N pairs from (T,) policy and reference trajectory log-probs.

    Every trajectory has exactly D actions, so D plays the role of the response token count (length-aware
    objectives such as R-DPO and SimPO therefore see every pair as equally long).
    """
    tokens = torch.full((pairs.chosen.numel(),), float(depth), dtype=logps.dtype)
    return PairLogps(
        policy_chosen=logps[pairs.chosen],
        policy_rejected=logps[pairs.rejected],
        ref_chosen=ref_logps[pairs.chosen],
        ref_rejected=ref_logps[pairs.rejected],
        chosen_tokens=tokens,
        rejected_tokens=tokens,
    )


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
    given = sum((reference_logits is not None, reference_in_data_mass is not None, reference_scale > 0))
    if given > 1:
        raise InputError("toy MDP takes one of reference_logits, reference_in_data_mass, reference_scale")
    if reference_in_data_mass is not None and pairs_from == "reference":
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
    if reference_in_data_mass is not None:
        if not 0.0 < reference_in_data_mass < 1.0:
            raise InputError(f"toy MDP option reference_in_data_mass must be in (0, 1), got {reference_in_data_mass}")
        in_data = masks["in_data"].float()
        probs = reference_in_data_mass * in_data / in_data.sum()
        probs = probs + (1.0 - reference_in_data_mass) / mdp.num_trajectories
        reference_logits = mdp.logits_for(probs)
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


def format_table(result: ToyMDPResult) -> str:
    """The printed summary: the rank facts, then start -> end masses for each (objective, beta) run."""
    flat = result.num_trajectories - 1 - result.pair_rank
    lines = [
        f"toy tree MDP: depth {result.depth}, {result.num_trajectories} trajectories, {result.policy} policy with "
        f"{result.num_trainable_parameters} trainable parameters ({result.num_free_parameters} free), "
        f"{result.num_pairs} pairs",
        f"pair-matrix rank {result.pair_rank} (of {result.num_trajectories} trajectories, "
        f"{result.num_trainable_parameters} trainable parameters, {result.num_free_parameters} free parameters): "
        f"the loss is flat along {flat} directions of the trajectory distribution",
        f"the loss sees {result.parameter_rank} of the {result.num_free_parameters} free parameter directions at "
        f"pi_ref (flat along {result.num_free_parameters - result.parameter_rank})",
        f"{'objective':<9} {'beta':>6} {'in-data':>15} {'out-of-data':>15} {'chosen':>15} {'rejected':>15} "
        f"{'KL':>6} {'gold':>6}",
    ]
    for first, last in zip(result.initial_records(), result.final_records(), strict=True):
        cells = [
            f"{float(first[key]):.3f} -> {float(last[key]):.3f}"
            for key in ("in_data_mass", "out_of_data_mass", "chosen_mass", "rejected_mass")
        ]
        lines.append(
            f"{last['objective']!s:<9} {float(last['beta']):>6.3g} "
            + " ".join(f"{cell:>15}" for cell in cells)
            + f" {float(last['kl']):>6.2f} {float(last['gold_reward']):>6.2f}"
        )
    return "\n".join(lines)


def write_csv(result: ToyMDPResult, path: str | Path) -> Path:
    """Write every per-step record (columns `RECORD_FIELDS`) and return the path."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RECORD_FIELDS)
        writer.writeheader()
        writer.writerows(result.records)
    return path


def plot_masses(result: ToyMDPResult, path: str | Path) -> Path:
    """Save a PNG of the masses over training: one row of panels per objective, one column per beta.

    Each panel shows in-data and out-of-data mass (solid) and chosen and rejected mass (dashed, may overlap).
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: the figure only goes to a file
    import matplotlib.pyplot as plt

    runs = [(str(r["objective"]), float(r["beta"])) for r in result.initial_records()]
    names = list(dict.fromkeys(name for name, _ in runs))
    betas = list(dict.fromkeys(beta for _, beta in runs))
    fig, axes = plt.subplots(
        len(names), len(betas), figsize=(3.2 * len(betas), 2.6 * len(names)), sharex=True, sharey=True, squeeze=False
    )
    curves = (
        ("in_data_mass", "in-data", "-", "tab:blue"),
        ("out_of_data_mass", "out-of-data", "-", "tab:red"),
        ("chosen_mass", "chosen", "--", "tab:green"),
        ("rejected_mass", "rejected", "--", "tab:gray"),
    )
    for row, name in enumerate(names):
        for col, beta in enumerate(betas):
            ax = axes[row][col]
            rows = [r for r in result.records if r["objective"] == name and float(r["beta"]) == beta]
            steps = [int(r["step"]) for r in rows]
            for key, label, style, color in curves:
                ax.plot(steps, [float(r[key]) for r in rows], style, color=color, label=label)
            ax.set_title(f"{name}, beta={beta:g}", fontsize=9)
            ax.set_ylim(-0.02, 1.02)
            if row == len(names) - 1:
                ax.set_xlabel("step")
            if col == 0:
                ax.set_ylabel("probability mass")
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(
        f"toy tree MDP ({result.policy} policy): {result.num_trajectories} trajectories, {result.num_pairs} pairs, "
        f"pair-matrix rank {result.pair_rank}",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of `main`."""
    parser = argparse.ArgumentParser(prog="python -m lit_daa.toy_mdp", description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=DEFAULT_DEPTH, help="actions per trajectory (3^depth of them)")
    parser.add_argument("--pairs", type=int, default=DEFAULT_PAIRS, help="number of preference pairs")
    parser.add_argument("--betas", type=float, nargs="+", default=list(DEFAULT_BETAS))
    parser.add_argument("--objectives", nargs="+", choices=sorted(OBJECTIVES), default=list(DEFAULT_OBJECTIVES))
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--bradley-terry", action="store_true", help="sample labels instead of the better one")
    parser.add_argument(
        "--reference-in-data-mass",
        type=float,
        default=None,
        help="SFT-like reference with this mass on the in-data trajectories (default: uniform reference)",
    )
    parser.add_argument(
        "--policy", choices=sorted(POLICIES), default="tabular", help="policy parameterisation (see the docstring)"
    )
    parser.add_argument(
        "--reference-scale",
        type=float,
        default=0.0,
        help="peaked reference: random logits with this scale per (node, action); 0 = uniform reference",
    )
    parser.add_argument(
        "--pairs-from", choices=PAIR_SOURCES, default="uniform", help="draw the pairs uniformly or from pi_ref"
    )
    parser.add_argument("--out", type=Path, default=Path("toy_mdp_out"), help="folder for toy_mdp.png and .csv")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the sweep, print the table, write ``toy_mdp.png`` and ``toy_mdp.csv`` into --out; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        result = run_toy_mdp(
            depth=args.depth,
            num_pairs=args.pairs,
            objectives=[OBJECTIVES[name] for name in args.objectives],
            betas=args.betas,
            steps=args.steps,
            lr=args.lr,
            seed=args.seed,
            optimizer=args.optimizer,
            bradley_terry=args.bradley_terry,
            reference_in_data_mass=args.reference_in_data_mass,
            policy=args.policy,
            reference_scale=args.reference_scale,
            pairs_from=args.pairs_from,
        )
    except InputError as error:
        print(error, file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    print(format_table(result))
    csv_path = write_csv(result, args.out / "toy_mdp.csv")
    png_path = plot_masses(result, args.out / "toy_mdp.png")
    print(f"wrote {png_path} and {csv_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
