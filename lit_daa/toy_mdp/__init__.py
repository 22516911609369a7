"""The toy tree MDP of Rafailov et al. 2024 (section 4, Figs. 5-6): where DAAs put mass the data never saw.

One concept per module: `mdp` (the tree), `policies` (tabular and shared-depth), `pairs` (preference data, the pair
matrix and the loss's flat directions), `train` (every objective at every beta, masses per step), `report` (table,
CSV, figures, the multi-seed summary), `cli` (`lit-daa toy-mdp`). The lab notes, what was measured and how to
reproduce it, are in docs/toy_mdp.md.
"""

from lit_daa.toy_mdp.cli import build_parser, main
from lit_daa.toy_mdp.mdp import NUM_ACTIONS, TreeMDP, initial_logits
from lit_daa.toy_mdp.pairs import (
    PAIR_SOURCES,
    PreferencePairs,
    loss_equivalent_logps,
    pair_logps,
    pair_matrix_rank,
    parameter_pair_rank,
    sample_pairs,
    sample_pairs_from,
)
from lit_daa.toy_mdp.policies import POLICIES, SharedDepthPolicy, TabularPolicy
from lit_daa.toy_mdp.report import format_table, plot_masses, write_csv
from lit_daa.toy_mdp.train import (
    DEFAULT_BETAS,
    DEFAULT_DEPTH,
    DEFAULT_LR,
    DEFAULT_OBJECTIVES,
    DEFAULT_PAIRS,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    OBJECTIVES,
    OPTIMIZERS,
    RECORD_FIELDS,
    ToyMDPResult,
    run_toy_mdp,
)

__all__ = [
    "DEFAULT_BETAS",
    "DEFAULT_DEPTH",
    "DEFAULT_LR",
    "DEFAULT_OBJECTIVES",
    "DEFAULT_PAIRS",
    "DEFAULT_SEED",
    "DEFAULT_STEPS",
    "NUM_ACTIONS",
    "OBJECTIVES",
    "OPTIMIZERS",
    "PAIR_SOURCES",
    "POLICIES",
    "RECORD_FIELDS",
    "PreferencePairs",
    "SharedDepthPolicy",
    "TabularPolicy",
    "ToyMDPResult",
    "TreeMDP",
    "build_parser",
    "format_table",
    "initial_logits",
    "loss_equivalent_logps",
    "main",
    "pair_logps",
    "pair_matrix_rank",
    "parameter_pair_rank",
    "plot_masses",
    "run_toy_mdp",
    "sample_pairs",
    "sample_pairs_from",
    "write_csv",
]
