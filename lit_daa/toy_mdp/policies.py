"""Policies on the toy tree MDP: tabular (one logit vector per state) and shared-depth (one offset per depth)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lit_daa.toy_mdp.mdp import NUM_ACTIONS, TreeMDP, initial_logits


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
