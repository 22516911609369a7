"""Evaluation as in the paper's section 3: sampling, sampled KL to the reference, judges, win rate, length R^2."""

from lit_daa.evaluation.eval_set import eval_set, read_eval_file
from lit_daa.evaluation.evaluate import EvalResult, SampleRecord, evaluate_policy
from lit_daa.evaluation.judges import (
    GoldRewardJudge,
    Judge,
    LocalLLMJudge,
    OpenAIJudge,
    RewardModelJudge,
    Verdict,
)
from lit_daa.evaluation.kl import KLEstimate, SampleScores, estimate_kl, score_samples, sequence_logratios
from lit_daa.evaluation.length import length_r2
from lit_daa.evaluation.sampling import Samples, sample
from lit_daa.evaluation.win_rate import WinRate

__all__ = [
    "EvalResult",
    "GoldRewardJudge",
    "Judge",
    "KLEstimate",
    "LocalLLMJudge",
    "OpenAIJudge",
    "RewardModelJudge",
    "SampleRecord",
    "SampleScores",
    "Samples",
    "Verdict",
    "WinRate",
    "estimate_kl",
    "eval_set",
    "evaluate_policy",
    "length_r2",
    "read_eval_file",
    "sample",
    "score_samples",
    "sequence_logratios",
]
