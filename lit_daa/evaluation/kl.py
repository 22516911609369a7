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
from collections.abc import Collection
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lit_daa.evaluation.inference import inference, model_device
from lit_daa.evaluation.sampling import Samples
from lit_daa.logps import head_on_positions, response_logps, right_pad, token_logps
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


@dataclass(frozen=True)
class SampleScores:
    """What scoring N samples gives, per sample.

    Attributes:
        logratios: (N,) float32 summed log pi(y_t | .) - log pi_ref(y_t | .) over the response tokens.
        tokens: (N,) int64 response tokens scored (EOS included when produced).
        ood_mass: (N,) float32 sum over the response tokens of pi(out-of-data | prefix), the policy's probability
            mass on the out-of-data tokens at that position; None when no in-data token set was given.
        ood_tokens: (N,) int64 response tokens that are themselves out-of-data; None likewise.
    """

    logratios: Tensor
    tokens: Tensor
    ood_mass: Tensor | None = None
    ood_tokens: Tensor | None = None


def out_of_data_mask(in_data: Collection[int], vocab_size: int) -> Tensor:
    """(V,) bool, True for every token id of a V-token vocabulary that is not in `in_data` (ids >= V are ignored).

    The policy's vocabulary may be padded past the tokenizer's (e.g. Pythia's 50304 rows); padded ids occur in no
    data, so they are out-of-data too."""
    mask = torch.ones(vocab_size, dtype=torch.bool)
    ids = [i for i in in_data if 0 <= i < vocab_size]
    if ids:
        mask[torch.tensor(ids, dtype=torch.long)] = False
    return mask


def score_samples(
    policy: nn.Module,
    reference: nn.Module,
    samples: Samples,
    batch_size: int = 64,
    in_data: Collection[int] | None = None,
) -> SampleScores:
    """Per sample, the log-ratio of policy to reference and, given `in_data`, the policy's out-of-data mass.

    Both models score the same tokens by teacher forcing on right-padded batches. The out-of-data mass reuses the
    (K, V) logits the policy's scoring pass already computes at the K response positions (one extra log-sum-exp
    over the masked vocabulary per position, no extra forward). When `reference is policy` the log-ratio is exactly
    zero without a second forward pass.

    Args:
        policy: the model the log-ratio's first term comes from (and whose out-of-data mass is measured).
        reference: the model of the second term.
        samples: N (prompt, response) token sequences.
        batch_size: sequences per forward pass.
        in_data: the in-data token ids; every other id of the policy's vocabulary is out-of-data
            (`out_of_data_mask`). None: no out-of-data statistics.

    Returns:
        `SampleScores`, on the CPU.
    """
    logratios, tokens, masses, counts = [], [], [], []
    with inference(policy, reference):
        for start in range(0, len(samples), batch_size):
            stop = start + batch_size
            batch = right_pad(list(zip(samples.prompt_ids[start:stop], samples.response_ids[start:stop], strict=True)))
            policy_logps, n_tokens, mass, count = _policy_scores(policy, batch, in_data)
            # the same model on both sides: the log-ratio is zero by definition, no second pass needed
            ref_logps = policy_logps if reference is policy else _logps(reference, batch)
            logratios.append(policy_logps - ref_logps)
            tokens.append(n_tokens)
            if mass is not None and count is not None:
                masses.append(mass)
                counts.append(count)
    empty_float, empty_long = torch.zeros(0), torch.zeros(0, dtype=torch.long)
    asked = in_data is not None
    return SampleScores(
        logratios=torch.cat(logratios) if logratios else empty_float,
        tokens=torch.cat(tokens) if tokens else empty_long,
        ood_mass=(torch.cat(masses) if masses else empty_float) if asked else None,
        ood_tokens=(torch.cat(counts) if counts else empty_long) if asked else None,
    )


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
    return score_samples(policy, reference, samples, batch_size).logratios


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


def _policy_scores(
    model: nn.Module, batch: tuple[Tensor, Tensor, Tensor], in_data: Collection[int] | None
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """One forward of `model` over a right-padded batch (N rows): (N,) summed response log-probs, (N,) response
    token counts, and with `in_data` (N,) summed out-of-data mass and (N,) out-of-data token counts; on the CPU.

    The positions are those `lit_daa.logps.response_logps` scores (the logits at t - 1 predict the token at t), so
    the log-probs are the same numbers it gives."""
    device = model_device(model)
    input_ids, attention_mask, response_mask = (t.to(device) for t in batch)
    n, width = input_ids.shape
    scored = response_mask.bool().clone()
    scored[:, 0] = False
    rows, cols = scored.nonzero(as_tuple=True)
    targets = input_ids[rows, cols]
    with head_on_positions(model, rows * width + cols - 1):
        logits = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=torch.arange(width, device=device).expand(n, width),
            use_cache=False,
        ).logits
    flat = logits.reshape(-1, logits.shape[-1])  # (K, V): one row per scored response token
    sums = torch.zeros(n, dtype=torch.float32, device=device).index_add_(0, rows, token_logps(flat, targets))
    counts = scored.sum(dim=1)
    if in_data is None:
        return sums.cpu(), counts.cpu(), None, None
    mask = out_of_data_mask(in_data, flat.shape[-1]).to(device)  # V from the logits: padded vocabularies included
    mass = torch.zeros(n, dtype=torch.float32, device=device).index_add_(0, rows, _masked_mass(flat, mask))
    ood = torch.zeros(n, dtype=torch.long, device=device).index_add_(0, rows, mask[targets].long())
    return sums.cpu(), counts.cpu(), mass.cpu(), ood.cpu()


def _masked_mass(logits: Tensor, mask: Tensor, chunk_rows: int = 1024) -> Tensor:
    """(K,) float32 sum of softmax(logits) over the vocabulary entries where `mask` (V,) is True.

    exp(logsumexp(masked) - logsumexp(all)) in float32, `chunk_rows` rows at a time (as `token_scores` bounds
    its memory); an all-False mask gives exactly 0."""
    if not bool(mask.any()):
        return logits.new_zeros(logits.shape[0], dtype=torch.float32)
    out = []
    for start in range(0, logits.shape[0], chunk_rows):
        rows = logits[start : start + chunk_rows].float()
        out.append(torch.exp(torch.logsumexp(rows[:, mask], dim=-1) - torch.logsumexp(rows, dim=-1)))
    return torch.cat(out) if out else logits.new_zeros(0, dtype=torch.float32)
