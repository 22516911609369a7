"""Objectives of Direct Alignment Algorithms; each is one small class picked by `class_path` in config."""

from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps
from lit_daa.objectives.dpo import DPO
from lit_daa.objectives.ipo import IPO
from lit_daa.objectives.rdpo import RDPO
from lit_daa.objectives.sft import SFT
from lit_daa.objectives.simpo import SimPO
from lit_daa.objectives.slic import SLiC

__all__ = ["DPO", "IPO", "RDPO", "SFT", "SLiC", "SimPO", "Objective", "ObjectiveOutput", "PairLogps"]
