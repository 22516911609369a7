"""The objectives beyond DPO/IPO/SLiC: values worked by hand, a limit case each, the gradient's sign, and
composition (RPO as Weighted([DPO, SFT]))."""

from __future__ import annotations

import math

import pytest
import torch

from lit_daa.objectives import (
    AOT,
    CPO,
    DPO,
    EXO,
    FDPO,
    NCA,
    ORPO,
    SFT,
    Alpha,
    AOTUnpaired,
    APODown,
    APOZero,
    BCOPair,
    DiscoPOP,
    ForwardKL,
    JensenShannon,
    NormalizedDPO,
    PairLogps,
    RobustDPO,
    SPPOHard,
    Weighted,
)


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def pair(pc=-10.0, pr=-14.0, rc=-12.0, rr=-13.0, nc=4.0, nr=2.0, grad=False) -> PairLogps:
    t = lambda v: torch.tensor([float(v)], dtype=torch.float64, requires_grad=grad)  # noqa: E731
    return PairLogps(t(pc), t(pr), t(rc), t(rr), t(nc).detach(), t(nr).detach())


# the default pair: chosen log-ratio c = 2, rejected r = -1, h = 3, tokens 4 and 2
C, R, H = 2.0, -1.0, 3.0

HAND = [
    (RobustDPO(0.5, 0.2), ((1 - 0.2) * -logsig(1.5) + 0.2 * logsig(-1.5)) / 0.6),
    (EXO(0.5, 0.01), sig(1.5) * (logsig(1.5) - math.log(0.99)) + sig(-1.5) * (logsig(-1.5) - math.log(0.01))),
    (NCA(0.5), -logsig(1.0) - 0.5 * logsig(-1.0) - 0.5 * logsig(0.5)),
    (BCOPair(0.5), -logsig(1.0) - logsig(0.5)),
    (BCOPair(0.5, delta=0.2), -logsig(0.8) - logsig(0.7)),
    (SPPOHard(0.5), (C - 1.0) ** 2 + (R + 1.0) ** 2),
    (AOT(0.5), -logsig(0.5 * H)),  # one pair: sorting changes nothing, it is DPO
    (AOTUnpaired(0.5, 0.1), 0.9 * -logsig(1.5) - 0.1 * logsig(-1.5)),
    (APOZero(0.5), 1 - sig(1.0) + sig(-0.5)),
    (APODown(0.5), sig(1.0) + 1 - sig(1.5)),
    (DiscoPOP(0.5, 0.05), (1 - sig(30.0)) * -logsig(1.5) + sig(30.0) * math.exp(-1.5)),
    (NormalizedDPO(0.5), -logsig(0.5 * (C / 4 - R / 2))),
    (CPO(0.5, 1.0), -logsig(0.5 * 4.0) + 10.0 / 4),
    (FDPO(0.5), -logsig(1.5)),  # reverse KL: DPO
    (FDPO(0.5, ForwardKL()), -logsig(0.5 * ((1 - math.exp(-C)) - (1 - math.exp(-R))))),
    (FDPO(0.5, JensenShannon()), -logsig(0.5 * (logsig(C) - logsig(R)))),
    (FDPO(0.5, Alpha(0.5)), -logsig(0.5 * ((math.exp(-0.5 * C) - 1) / -0.5 - (math.exp(-0.5 * R) - 1) / -0.5))),
]


@pytest.mark.parametrize(("objective", "expected"), HAND, ids=lambda x: repr(x) if not isinstance(x, float) else "")
def test_hand_worked_values(objective, expected: float) -> None:
    assert objective(pair()).loss.item() == pytest.approx(expected, abs=1e-12)


def test_orpo_hand_value() -> None:
    a, b = -10.0 / 4, -14.0 / 2  # mean log-probs of chosen and rejected
    log_odds = (a - b) - (math.log(1 - math.exp(a)) - math.log(1 - math.exp(b)))
    out = ORPO(0.1)(pair())
    assert out.loss.item() == pytest.approx(-a - 0.1 * logsig(log_odds), abs=1e-12)
    assert out.chosen_rewards.item() == pytest.approx(0.1 * a)


ZERO = pair(pc=-5.0, pr=-7.0, rc=-5.0, rr=-7.0)  # policy = reference: every log-ratio is 0


@pytest.mark.parametrize(
    ("objective", "limit"),
    [
        (RobustDPO(2.0, 0.3), math.log(2)),
        (NCA(1.0), 2 * math.log(2)),
        (BCOPair(1.0), 2 * math.log(2)),
        (APOZero(1.0), 1.0),
        (APODown(1.0), 1.0),
        (DiscoPOP(1.0), (math.log(2) + 1) / 2),
        (NormalizedDPO(1.0), math.log(2)),
        (AOT(1.0), math.log(2)),
        (AOTUnpaired(1.0), math.log(2)),
        (FDPO(1.0, ForwardKL()), math.log(2)),
        (FDPO(1.0, JensenShannon()), math.log(2)),
        (FDPO(1.0, Alpha(0.3)), math.log(2)),
    ],
    ids=repr,
)
def test_value_at_zero_log_ratios(objective, limit: float) -> None:
    assert objective(ZERO).loss.item() == pytest.approx(limit, abs=1e-12)


def test_minima_at_the_targets() -> None:
    # SPPO-hard: each log-ratio at +-1/(2 beta); EXO: beta h = log((1 - eps)/eps)
    assert SPPOHard(0.25)(pair(pc=-10.0, pr=-14.0, rc=-12.0, rr=-12.0)).loss.item() == pytest.approx(0.0, abs=1e-12)
    u = math.log(0.99 / 0.01)
    at = EXO(1.0, 0.01)(pair(pc=u, pr=0.0, rc=0.0, rr=0.0)).loss.item()
    assert at == pytest.approx(0.0, abs=1e-12)
    for shift in (-0.3, 0.3):
        assert EXO(1.0, 0.01)(pair(pc=u + shift, pr=0.0, rc=0.0, rr=0.0)).loss.item() > at


@pytest.mark.parametrize(
    ("objective", "chosen_sign"),
    [
        (RobustDPO(0.5, 0.1), -1),
        (EXO(0.5), -1),
        (NCA(0.5), -1),
        (BCOPair(0.5), -1),
        (SPPOHard(0.5), -1),
        (AOT(0.5), -1),
        (AOTUnpaired(0.5), -1),
        (APOZero(0.5), -1),
        (APODown(0.5), 1),  # APO-down lowers the chosen likelihood too (less than the rejected one)
        (DiscoPOP(0.5), -1),
        (NormalizedDPO(0.5), -1),
        (ORPO(0.5), -1),
        (CPO(0.5), -1),
        (FDPO(0.5, ForwardKL()), -1),
        (FDPO(0.5, JensenShannon()), -1),
        (FDPO(0.5, Alpha(0.5)), -1),
    ],
    ids=repr,
)
def test_gradient_signs(objective, chosen_sign: int) -> None:
    # at a negative margin (h = -2, policy below its reference on the chosen response) every loss asks for more
    logps = pair(pc=-13.0, pr=-12.0, rc=-12.0, rr=-13.0, grad=True)
    objective(logps).loss.backward()
    assert math.copysign(1, logps.policy_chosen.grad.item()) == chosen_sign
    assert logps.policy_rejected.grad.item() > 0  # rejected likelihood down


def test_aot_compares_sorted_margins_not_pairs() -> None:
    # two pairs whose margins are swapped between policy and reference: pairwise DPO sees +-1, AOT sees 0
    t = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    logps = PairLogps(t(0.0, 0.0), t(-1.0, 1.0), t(0.0, 0.0), t(1.0, -1.0), t(3.0, 3.0), t(3.0, 3.0))
    assert AOT(1.0)(logps).loss.item() == pytest.approx(math.log(2), abs=1e-12)
    assert DPO(1.0)(logps).loss.item() != pytest.approx(math.log(2), abs=1e-3)


def test_rpo_is_dpo_plus_sft_and_reports_its_parts() -> None:
    rpo = Weighted([DPO(0.5), SFT()], weights=[1.0, 0.5])
    assert rpo.requires_reference
    out = rpo(pair())
    dpo, sft = DPO(0.5)(pair()), SFT()(pair())
    assert out.loss.item() == pytest.approx(dpo.loss.item() + 0.5 * sft.loss.item(), abs=1e-12)
    assert set(out.parts) == {"dpo", "sft"} and out.parts["sft"].item() == pytest.approx(sft.loss.item())
    assert torch.equal(out.chosen_rewards, dpo.chosen_rewards)
    assert not Weighted([SFT(), CPO()]).requires_reference  # reference-free parts need none


def test_rpo_class_is_the_weighted_composition() -> None:
    from lit_daa.objectives import RPO

    rpo, composed = RPO(0.5, alpha=0.5)(pair()), Weighted([DPO(0.5), SFT()], weights=[1.0, 0.5])(pair())
    assert rpo.loss.item() == pytest.approx(composed.loss.item(), abs=1e-12) and rpo.parts.keys() == {"dpo", "sft"}


def token_pair(grad: bool = False) -> PairLogps:
    """One pair from per-token values: chosen 3 tokens, rejected 5 (so the rejected tail is tokens 3 and 4)."""
    from lit_daa.objectives.base import PairTokens

    t = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    policy = t(-1.0, -2.0, -0.5, -1.5, -0.25, -3.0, -1.0, -2.0).requires_grad_(grad)
    ref = t(-1.5, -1.0, -1.0, -1.0, -0.5, -2.0, -2.0, -1.0)
    seq, pos = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1]), torch.tensor([0, 1, 2, 0, 1, 2, 3, 4])
    collision = t(-0.5, -0.7, -0.2, -0.9, -0.1, -1.2, -0.3, -0.4)
    sums = torch.zeros(2, dtype=torch.float64).index_add(0, seq, policy)
    ref_sums = torch.zeros(2, dtype=torch.float64).index_add(0, seq, ref)
    return PairLogps.from_rows(sums, t(3.0, 5.0), ref_sums, PairTokens(seq, pos, policy, collision, ref))


def test_ld_dpo_down_weights_the_longer_tail_and_is_dpo_at_alpha_1() -> None:
    from lit_daa.objectives import LDDPO

    logps = token_pair()
    assert LDDPO(0.5, 1.0)(logps).loss.item() == pytest.approx(DPO(0.5)(logps).loss.item(), abs=1e-12)
    # chosen: all 3 tokens; rejected: 3 shared tokens + 0.25 x the 2-token tail, for policy and reference
    pc, rc = -1.0 - 2.0 - 0.5, -1.5 - 1.0 - 1.0
    pr, rr = -1.5 - 0.25 - 3.0 + 0.25 * (-1.0 - 2.0), -1.0 - 0.5 - 2.0 + 0.25 * (-2.0 - 1.0)
    expected = -logsig(0.5 * ((pc - rc) - (pr - rr)))
    assert LDDPO(0.5, 0.25)(logps).loss.item() == pytest.approx(expected, abs=1e-12)


def test_ld_dpo_gradient_signs_and_the_tail_weight() -> None:
    from lit_daa.objectives import LDDPO

    logps = token_pair(grad=True)
    LDDPO(0.5, 0.25)(logps).loss.backward()
    grad = logps.tokens.policy.grad
    assert (grad[:3] < 0).all() and (grad[3:] > 0).all()  # chosen tokens up, rejected down
    assert grad[6].item() == pytest.approx(0.25 * grad[3].item())  # a tail token counts a quarter


def test_ld_dpo_refuses_a_cached_reference() -> None:
    from lit_daa.errors import InputError
    from lit_daa.objectives import LDDPO

    with pytest.raises(InputError, match="LDDPO needs per-token reference log-probs"):
        LDDPO(0.5)(pair())


def test_wpo_weights_each_pair_by_its_policy_likelihood() -> None:
    from lit_daa.objectives import WPO

    logps = token_pair(grad=True)
    w_chosen = math.exp(((-1.0 + 0.5) + (-2.0 + 0.7) + (-0.5 + 0.2)) / 3)
    w_rejected = math.exp(((-1.5 + 0.9) + (-0.25 + 0.1) + (-3.0 + 1.2) + (-1.0 + 0.3) + (-2.0 + 0.4)) / 5)
    out = WPO(DPO(0.5))(logps)
    assert out.loss.item() == pytest.approx(DPO(0.5)(logps).loss.item() * w_chosen * w_rejected, abs=1e-12)
    out.loss.backward()  # the weight is a constant: the gradient is the weighted DPO gradient
    assert logps.tokens.policy.grad[0].item() < 0 and logps.tokens.policy.grad[3].item() > 0
