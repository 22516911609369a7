"""Sequence-level KL between a policy and its reference, estimated by Monte Carlo from samples.

    KL(pi || pi_ref) = E_{y ~ pi(.|x)} [ log pi(y|x) - log pi_ref(y|x) ],   log pi(y|x) = sum_t log pi(y_t | x, y_<t)

The estimate is the mean over prompts of the summed log-ratio of one sample per prompt, drawn from pi by pure
ancestral sampling (see `sampling`). It is unbiased for the KL of the sequence distributions truncated at
`max_new_tokens` (a sequence ends at EOS or at that length). Single terms can be negative; their expectation
cannot. The forward KL(pi_ref || pi) is the same estimator with the roles swapped: samples from pi_ref,
terms log pi_ref - log pi.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lit_daa.evaluation.inference import inference, model_device
from lit_daa.evaluation.sampling import Samples
from lit_daa.logps import response_logps, right_pad
from lit_daa.metrics import SequenceKL


@dataclass(frozen=True)
class KLEstimate:
    """A Monte-Carlo KL estimate.

    Attributes:
        mean: mean of the per-sample log-ratios.
        stderr: their standard deviation (ddof=1) / sqrt(n); NaN for n < 2.
        sqrt_kl: sqrt(max(mean, 0)), the paper's x-axis d.
        n: number of samples.
    """

    mean: float
    stderr: float
    sqrt_kl: float
    n: int

    @classmethod
    def from_logratios(cls, logratios: Tensor) -> KLEstimate:
        """Estimate from (N,) per-sample sequence log-ratios log p(y) - log q(y), y ~ p (`SequenceKL`)."""
        metric = SequenceKL()
        metric.update(logratios)
        values = {k: float(v) for k, v in metric.compute().items()}
        n = int(logratios.numel())
        sqrt_kl = values["sqrt_kl"] if n else math.nan
        return cls(mean=values["kl"], stderr=values["kl_stderr"], sqrt_kl=sqrt_kl, n=n)


def sequence_logratios(policy: nn.Module, reference: nn.Module, samples: Samples, batch_size: int = 64) -> Tensor:
    """Per sample, sum over its response tokens of log policy(y_t | .) - log reference(y_t | .).

    Both models score the same tokens by teacher forcing on right-padded batches (`lit_daa.logps.response_logps`).
    When `reference is policy` the result is exactly zero without a second forward pass.

    Args:
        policy: the model the log-ratio's first term comes from.
        reference: the model of the second term.
        samples: N (prompt, response) token sequences.
        batch_size: sequences per forward pass.

    Returns:
        (N,) float32 log-ratios, on the CPU.
    """
    out = []
    with inference(policy, reference):
        for start in range(0, len(samples), batch_size):
            stop = start + batch_size
            batch = right_pad(list(zip(samples.prompt_ids[start:stop], samples.response_ids[start:stop], strict=True)))
            policy_logps = _logps(policy, batch)
            # the same model on both sides: the log-ratio is zero by definition, no second pass needed
            ref_logps = policy_logps if reference is policy else _logps(reference, batch)
            out.append(policy_logps - ref_logps)
    return torch.cat(out) if out else torch.zeros(0)


def estimate_kl(policy: nn.Module, reference: nn.Module, samples: Samples, batch_size: int = 64) -> KLEstimate:
    """KL(policy || reference) from `samples` drawn from `policy`.

    For the forward KL(pi_ref || pi) pass the models swapped and samples drawn from the reference:
    `estimate_kl(reference, policy, reference_samples)`.
    """
    return KLEstimate.from_logratios(sequence_logratios(policy, reference, samples, batch_size))


def _logps(model: nn.Module, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """(N,) float32 summed response log-probs of a right-padded batch, on the CPU."""
    device = model_device(model)
    sums, _ = response_logps(model, *(t.to(device) for t in batch))
    return sums.float().cpu()
