"""Judges compare a sampled response with a reference response: gold reward, reward model, local LLM, HTTP LLM."""

from lit_daa.evaluation.judges.base import Judge, ScoringJudge, Verdict
from lit_daa.evaluation.judges.gold import GoldRewardJudge
from lit_daa.evaluation.judges.local_llm import LocalLLMJudge
from lit_daa.evaluation.judges.openai_http import OpenAIJudge
from lit_daa.evaluation.judges.pairwise import Comparison, PairwiseJudge, parse_preference
from lit_daa.evaluation.judges.reward_model import RewardModelJudge
from lit_daa.evaluation.judges.templates import TLDR_JUDGE_TEMPLATE

__all__ = [
    "TLDR_JUDGE_TEMPLATE",
    "Comparison",
    "GoldRewardJudge",
    "Judge",
    "LocalLLMJudge",
    "OpenAIJudge",
    "PairwiseJudge",
    "RewardModelJudge",
    "ScoringJudge",
    "Verdict",
    "parse_preference",
]
