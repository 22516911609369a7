"""Objectives of Direct Alignment Algorithms; each is one small class picked by `class_path` in config."""

from lit_daa.objectives.aot import AOT, AOTUnpaired
from lit_daa.objectives.apo import APODown, APOZero
from lit_daa.objectives.apo_zero_unpaired import APOZeroUnpaired
from lit_daa.objectives.base import Objective, ObjectiveOutput, PairLogps
from lit_daa.objectives.bco import BCO
from lit_daa.objectives.bco_pair import BCOPair
from lit_daa.objectives.chipo import ChiPO
from lit_daa.objectives.cpo import CPO
from lit_daa.objectives.discopop import DiscoPOP
from lit_daa.objectives.dpo import DPO
from lit_daa.objectives.dpop import DPOP
from lit_daa.objectives.exo import EXO
from lit_daa.objectives.fdpo import FDPO, Alpha, Divergence, ForwardKL, JensenShannon, ReverseKL
from lit_daa.objectives.ipo import IPO
from lit_daa.objectives.kto import KTO
from lit_daa.objectives.ld_dpo import LDDPO
from lit_daa.objectives.nca import NCA
from lit_daa.objectives.normalized_dpo import NormalizedDPO
from lit_daa.objectives.orpo import ORPO
from lit_daa.objectives.rdpo import RDPO
from lit_daa.objectives.robust_dpo import RobustDPO
from lit_daa.objectives.rpo import RPO
from lit_daa.objectives.sft import SFT
from lit_daa.objectives.simpo import SimPO
from lit_daa.objectives.slic import SLiC
from lit_daa.objectives.sppo import SPPOHard
from lit_daa.objectives.unpaired import RowLogps, RowOutput, UnpairedObjective
from lit_daa.objectives.weighted import Weighted
from lit_daa.objectives.wpo import WPO

__all__ = [
    "AOT",
    "AOTUnpaired",
    "APODown",
    "APOZero",
    "APOZeroUnpaired",
    "BCO",
    "BCOPair",
    "CPO",
    "ChiPO",
    "DPO",
    "DPOP",
    "EXO",
    "FDPO",
    "Alpha",
    "Divergence",
    "ForwardKL",
    "JensenShannon",
    "ReverseKL",
    "IPO",
    "KTO",
    "LDDPO",
    "NCA",
    "ORPO",
    "RDPO",
    "RPO",
    "SFT",
    "DiscoPOP",
    "NormalizedDPO",
    "Objective",
    "ObjectiveOutput",
    "PairLogps",
    "RobustDPO",
    "RowLogps",
    "RowOutput",
    "SLiC",
    "SPPOHard",
    "SimPO",
    "UnpairedObjective",
    "Weighted",
    "WPO",
]
