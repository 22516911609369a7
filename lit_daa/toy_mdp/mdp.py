"""The toy tree MDP's states and trajectories (docs/toy_mdp.md): a depth-D tree with three deterministic actions per
state, whose T = 3^D trajectories are indexed by reading the actions as a base-3 number."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lit_daa.errors import InputError

NUM_ACTIONS = 3


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
