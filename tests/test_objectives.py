"""Objectives against values worked by hand, limit cases and the sign of the gradient."""

from __future__ import annotations

import math

import pytest
import torch

from lit_daa.objectives import DPO, IPO, RDPO, SFT, PairLogps, SimPO, SLiC


def pair(pc, pr, rc, rr, nc=4.0, nr=2.0, grad=False) -> PairLogps:
    t = lambda v: torch.tensor([float(v)], dtype=torch.float64, requires_grad=grad)  # noqa: E731
    return PairLogps(
        t(pc), t(pr), t(rc), t(rr), torch.tensor([nc], dtype=torch.float64), torch.tensor([nr], dtype=torch.float64)
    )


# h = (-10 - -12) - (-14 - -13) = 2 - (-1) = 3
H_PAIR = dict(pc=-10, pr=-14, rc=-12, rr=-13)


def test_dpo_hand_value_and_rewards() -> None:
    out = DPO(beta=0.5)(pair(**H_PAIR))
    # u = 0.5 * 3 = 1.5 ; -log sigmoid(1.5) = log(1 + e^-1.5)
    assert out.loss.item() == pytest.approx(math.log1p(math.exp(-1.5)), abs=1e-12)
    assert out.chosen_rewards.item() == pytest.approx(0.5 * 2)
    assert out.rejected_rewards.item() == pytest.approx(0.5 * -1)
    assert not out.chosen_rewards.requires_grad


def test_dpo_label_smoothing_hand_value_and_log2_limit() -> None:
    out = DPO(beta=0.5, label_smoothing=0.2)(pair(**H_PAIR))
    expected = 0.8 * math.log1p(math.exp(-1.5)) + 0.2 * math.log1p(math.exp(1.5))
    assert out.loss.item() == pytest.approx(expected, abs=1e-12)
    for eps in (0.0, 0.1, 0.4):
        zero = DPO(beta=3.0, label_smoothing=eps)(pair(-5, -7, -5, -7))
        assert zero.loss.item() == pytest.approx(math.log(2), abs=1e-12)


def test_ipo_forms_hand_values_and_minimum() -> None:
    # paper form: (beta*h - 1)^2 = (0.5*3 - 1)^2 = 0.25 ; azar form: (h - 1/(2 beta))^2 = (3 - 1)^2 = 4
    assert IPO(beta=0.5)(pair(**H_PAIR)).loss.item() == pytest.approx(0.25)
    assert IPO(beta=0.5, form="azar")(pair(**H_PAIR)).loss.item() == pytest.approx(4.0)
    # per token: h = 2/4 - (-1)/2 = 1 ; paper form (0.5 - 1)^2
    assert IPO(beta=0.5, per_token=True)(pair(**H_PAIR)).loss.item() == pytest.approx(0.25)
    # the minimum sits at the target margin: h = 1/beta (paper), 1/(2 beta) (azar)
    assert IPO(beta=0.25).target_margin == 4.0 and IPO(beta=0.25, form="azar").target_margin == 2.0
    assert IPO(beta=0.25)(pair(-6, -10, -10, -10)).loss.item() == pytest.approx(0.0)
    assert IPO(beta=0.25, form="azar")(pair(-8, -10, -10, -10)).loss.item() == pytest.approx(0.0)


def test_slic_hinge() -> None:
    assert SLiC(beta=0.1)(pair(**H_PAIR)).loss.item() == pytest.approx(1 - 0.3)
    assert SLiC(beta=1.0)(pair(**H_PAIR)).loss.item() == 0.0  # 1 - 3 < 0
    assert SLiC(beta=0.5, margin=2.0)(pair(**H_PAIR)).loss.item() == pytest.approx(0.5)


def test_rdpo_length_term_sign() -> None:
    # chosen has 4 tokens, rejected 2: -log sigmoid(0.5*3 + 0.1*(4-2)) = log(1 + e^-1.7)
    out = RDPO(beta=0.5, alpha=0.1)(pair(**H_PAIR))
    assert out.loss.item() == pytest.approx(math.log1p(math.exp(-1.7)), abs=1e-12)
    assert RDPO(beta=0.5, alpha=0.0)(pair(**H_PAIR)).loss.item() == pytest.approx(
        DPO(beta=0.5)(pair(**H_PAIR)).loss.item()
    )


def test_simpo_reference_free_hand_value() -> None:
    p = pair(**H_PAIR)
    # mean logps: -10/4 = -2.5, -14/2 = -7 ; u = 2*(4.5) - 1 = 8
    out = SimPO(beta=2.0, gamma=1.0)(
        PairLogps(p.policy_chosen, p.policy_rejected, None, None, p.chosen_tokens, p.rejected_tokens)
    )
    assert out.loss.item() == pytest.approx(math.log1p(math.exp(-8.0)), abs=1e-12)
    assert out.chosen_rewards.item() == pytest.approx(-5.0)
    assert not SimPO.requires_reference and not SFT.requires_reference and DPO.requires_reference


def test_sft_token_weighted_nll() -> None:
    p = PairLogps(
        torch.tensor([-4.0, -9.0]),
        torch.tensor([-1.0, -1.0]),
        None,
        None,
        torch.tensor([2.0, 3.0]),
        torch.tensor([1.0, 1.0]),
    )
    out = SFT()(p)
    assert out.loss.item() == pytest.approx(13.0 / 5.0)
    assert out.losses.tolist() == pytest.approx([2.0, 3.0])


@pytest.mark.parametrize(
    "objective", [DPO(0.5), DPO(0.5, 0.1), IPO(0.5), IPO(0.5, "azar"), SLiC(0.1), RDPO(0.5, 0.01), SimPO(2.0, 0.5)]
)
def test_gradient_pushes_chosen_up_rejected_down(objective) -> None:
    p = pair(-10, -10, -10, -10, grad=True)  # h = 0: every objective wants a larger margin here
    objective(p).loss.backward()
    assert p.policy_chosen.grad.item() < 0  # gradient descent raises log pi(y_w)
    assert p.policy_rejected.grad.item() > 0  # ... and lowers log pi(y_l)


def test_sft_gradient_raises_chosen_only() -> None:
    p = pair(-10, -10, -10, -10, grad=True)
    SFT()(p).loss.backward()
    assert p.policy_chosen.grad.item() < 0 and p.policy_rejected.grad is None


@pytest.mark.parametrize("cls", [DPO, IPO, SLiC, RDPO, SimPO])
def test_beta_must_be_positive(cls) -> None:
    with pytest.raises(ValueError, match="beta must be > 0"):
        cls(beta=0.0)


def test_reference_needed_message() -> None:
    p = PairLogps(torch.zeros(1), torch.zeros(1), None, None, torch.ones(1), torch.ones(1))
    with pytest.raises(ValueError, match="needs reference"):
        DPO()(p)
