"""Best-of-n from one pool of N samples per prompt: the unbiased estimator for every n = 1..N, and its KL.

Best-of-n draws n answers, keeps the one a selector scores highest and reports its outcome. With a pool of N >= n
answers per prompt, the expected outcome over all C(N, n) subsets of size n is computed exactly rather than by
resampling (Nakano et al. 2021, Gao et al. 2023): sort the pool by score ascending; the i-th smallest (1-based) is
the maximum of a uniformly random n-subset with probability

    w(n, i) = C(i - 1, n - 1) / C(N, n)

(it must be in the subset, and the other n - 1 members must come from the i - 1 answers below it).

Ties in the score. When several answers of a subset share its highest score, the kept one is drawn uniformly
among them. That is the same as ordering tied answers by a uniformly random permutation, so an answer's weight is
w(n, i) averaged over the ranks i its tie group occupies: tied answers share their probability equally.

KL. The KL of the best-of-n distribution to the sampling policy is log n - (n - 1) / n (Stiennon et al. 2020, an
upper bound that is exact for continuous scores without ties); d = sqrt(KL) is the x-axis of Gao et al.'s
best-of-n form R(d) = d (alpha - beta d) (`lit_daa.analysis.fits.QuadraticForm`).
"""

from __future__ import annotations

import math

import numpy as np

from lit_daa.errors import InputError


def best_of_n_kl(n: int | np.ndarray) -> np.ndarray:
    """log n - (n - 1) / n for each n >= 1 (array of the same shape as `n`, float64)."""
    n = np.asarray(n, dtype=np.float64)
    if np.any(n < 1):
        raise InputError("best-of-n needs n >= 1")
    return np.log(n) - (n - 1) / n


def selection_weights(pool: int) -> np.ndarray:
    """(N, N) array W with W[n - 1, i - 1] = C(i - 1, n - 1) / C(N, n): the probability that the i-th smallest of
    N distinct scores is the largest of a uniformly random n-subset (rows sum to 1; zero for i < n)."""
    if pool < 1:
        raise InputError(f"best-of-n needs a pool of at least 1 answer per prompt, got {pool}")
    weights = np.zeros((pool, pool), dtype=np.float64)
    for n in range(1, pool + 1):
        total = math.comb(pool, n)
        for i in range(n, pool + 1):
            weights[n - 1, i - 1] = math.comb(i - 1, n - 1) / total  # exact integers, one rounding
    return weights


def _check(scores: np.ndarray, outcomes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, outcomes = np.asarray(scores, dtype=np.float64), np.asarray(outcomes, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != outcomes.shape or scores.shape[1] < 1:
        raise InputError(
            f"best-of-n needs scores and outcomes of one shape (prompts, N) with N >= 1, got {scores.shape} "
            f"and {outcomes.shape}"
        )
    if np.isnan(scores).any():
        raise InputError("best-of-n selection scores must not be NaN")
    return scores, outcomes


def best_of_n_per_prompt(scores: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """(P, N) expected outcome of best-of-n per prompt: column n - 1 for n = 1..N.

    Args:
        scores: (P, N) selection scores of each prompt's pool (higher is kept).
        outcomes: (P, N) the outcome of each answer (e.g. 1 win / 0.5 tie / 0 loss, or a reward value).

    Returns:
        E[outcome of the highest-scored answer of a uniformly random n-subset of the pool], ties in the score
        sharing their probability equally (see the module docstring). Column 0 is the pool mean; column N - 1
        is the outcome of the top-scored answer (the mean over the top ones if tied).
    """
    scores, outcomes = _check(scores, outcomes)
    prompts, pool = scores.shape
    base = selection_weights(pool)  # (n, rank)
    out = np.empty((prompts, pool), dtype=np.float64)
    for p in range(prompts):
        order = np.argsort(scores[p], kind="stable")
        s, g = scores[p, order], outcomes[p, order]
        weights = base.copy()
        # each tie group [start, end) of the sorted scores gets its members' mean weight
        start = 0
        while start < pool:
            end = start + 1
            while end < pool and s[end] == s[start]:
                end += 1
            if end - start > 1:
                weights[:, start:end] = weights[:, start:end].mean(axis=1, keepdims=True)
            start = end
        out[p] = weights @ g
    return out


def best_of_n(scores: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """(N,) expected best-of-n outcome for n = 1..N, averaged over prompts (see `best_of_n_per_prompt`)."""
    return best_of_n_per_prompt(scores, outcomes).mean(axis=0)


def best_of_n_stderr(scores: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """(N,) standard error across prompts of `best_of_n`: the sample std (ddof 1) of the per-prompt expected
    outcomes over sqrt(P); NaN with a single prompt. It measures prompt-to-prompt spread only (the per-prompt
    values are already averages over the pool)."""
    per_prompt = best_of_n_per_prompt(scores, outcomes)
    if per_prompt.shape[0] < 2:
        return np.full(per_prompt.shape[1], np.nan)
    return per_prompt.std(axis=0, ddof=1) / math.sqrt(per_prompt.shape[0])
