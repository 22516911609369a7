"""Sequence log-probs against an independent, naive computation on a real tiny model."""

from __future__ import annotations

import torch

from lit_daa.logps import response_logps, token_logps
from lit_daa.models import load_causal_lm


def test_token_logps_matches_log_softmax() -> None:
    logits = torch.randn(5, 7, 11, dtype=torch.bfloat16)
    targets = torch.randint(0, 11, (5, 7))
    naive = torch.log_softmax(logits.float(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(token_logps(logits, targets, chunk_rows=2), naive, atol=1e-6)


def test_response_logps_matches_one_row_at_a_time() -> None:
    model = load_causal_lm("embedded:neox-tiny")
    # two rows of different prompt and response lengths, right-padded with 0
    rows = [([3, 10, 4, 20], [30, 31, 2]), ([3, 11, 4], [40, 2])]
    T = max(len(p) + len(r) for p, r in rows)
    ids = torch.zeros(2, T, dtype=torch.long)
    am = torch.zeros_like(ids)
    rm = torch.zeros_like(ids)
    for i, (p, r) in enumerate(rows):
        ids[i, : len(p) + len(r)] = torch.tensor(p + r)
        am[i, : len(p) + len(r)] = 1
        rm[i, len(p) : len(p) + len(r)] = 1
    sums, counts = response_logps(model, ids, am, rm)
    for i, (p, r) in enumerate(rows):
        full = torch.tensor([p + r])
        with torch.no_grad():
            lp = torch.log_softmax(model(full).logits[0].double(), -1)
        expected = sum(lp[len(p) - 1 + j, tok].item() for j, tok in enumerate(r))
        assert abs(sums[i].item() - expected) < 1e-4
        assert counts[i].item() == len(r)
