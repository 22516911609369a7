"""Preference pairs on the toy tree MDP, their pair matrix and its rank, and the loss's flat directions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from lit_daa.errors import InputError
from lit_daa.objectives import PairLogps

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
    return _labelled(a, b, gold, generator, bradley_terry)


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
    return _labelled(a, b, gold, generator, bradley_terry)


def _labelled(a: Tensor, b: Tensor, gold: Tensor, generator: torch.Generator, bradley_terry: bool) -> PreferencePairs:
    """Pairs (a, b) labelled by the gold reward: the higher one wins, or Bradley-Terry draws sigmoid(r_a - r_b)."""
    if bradley_terry:
        a_wins = torch.rand(a.numel(), generator=generator) < torch.sigmoid(gold[a] - gold[b])
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
