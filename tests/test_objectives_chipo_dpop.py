"""ChiPO and DPOP against values worked by hand, their limits and the options they refuse."""

from __future__ import annotations

import math

import pytest
import torch

from lit_daa.errors import InputError
from lit_daa.objectives import DPO, DPOP, ChiPO, PairLogps


def pair(pc, pr, rc, rr, grad=False) -> PairLogps:
    t = lambda v: torch.tensor([float(v)], dtype=torch.float64, requires_grad=grad)  # noqa: E731
    n = torch.tensor([3.0], dtype=torch.float64)
    return PairLogps(t(pc), t(pr), t(rc), t(rr), n, n)


def softplus(x: float) -> float:
    """-log sigmoid(-x) = log(1 + e^x)."""
    return math.log1p(math.exp(x))


# log-ratios: chosen h_w = -10 - -12 = 2, rejected h_l = -14 - -13 = -1
H = dict(pc=-10, pr=-14, rc=-12, rr=-13)


def test_chipo_hand_value_link_and_rewards() -> None:
    out = ChiPO(beta=0.5)(pair(**H))
    # phi(z) = z + log z from h = log z: e^h + h ; u = 0.5 * ((e^2 + 2) - (e^-1 - 1))
    u = 0.5 * ((math.exp(2) + 2) - (math.exp(-1) - 1))
    assert out.loss.item() == pytest.approx(softplus(-u), abs=1e-12)
    assert out.chosen_rewards.item() == pytest.approx(0.5 * (math.exp(2) + 2))
    assert out.rejected_rewards.item() == pytest.approx(0.5 * (math.exp(-1) - 1))


def test_chipo_clips_at_two_r_max_and_stops_pushing() -> None:
    p = pair(**H, grad=True)
    out = ChiPO(beta=0.5, r_max=1.0)(p)  # u = 4.0... is clipped to 2 R_max = 2
    assert out.loss.item() == pytest.approx(softplus(-2.0), abs=1e-12)
    out.loss.backward()
    assert p.policy_chosen.grad.item() == 0.0  # past the clip the loss no longer moves the policy
    # below the clip it is the unclipped loss
    near = pair(-12, -13, -12, -13)
    assert ChiPO(beta=0.5, r_max=10.0)(near).loss.item() == pytest.approx(math.log(2), abs=1e-12)


def test_chipo_link_is_not_shift_invariant_like_dpo() -> None:
    # the same log-ratio margin h_w - h_l = 3 at chosen ratios e^0 and e^2: DPO's loss is the same, ChiPO's link
    # grows as e^h, so the pair whose chosen ratio is already large gets a smaller loss (it is pushed less)
    low, high = pair(-12, -15, -12, -12), pair(-10, -13, -12, -12)
    assert DPO(0.5)(low).loss.item() == pytest.approx(DPO(0.5)(high).loss.item())
    assert ChiPO(0.5)(high).loss.item() < ChiPO(0.5)(low).loss.item()


def test_chipo_huge_log_ratio_stays_finite() -> None:
    p = pair(0.0, -500.0, -400.0, -400.0, grad=True)  # h_w = 400: exp would overflow float64 without the cap
    out = ChiPO(beta=0.1, r_max=5.0)(p)
    out.loss.backward()
    assert math.isfinite(out.loss.item()) and math.isfinite(p.policy_chosen.grad.item())


def test_dpop_is_dpo_while_chosen_stays_above_reference() -> None:
    assert DPOP(beta=0.5, penalty=50.0)(pair(**H)).loss.item() == pytest.approx(DPO(0.5)(pair(**H)).loss.item())


def test_dpop_hand_value_below_reference() -> None:
    # c = -13 - -12 = -1 (chosen below the reference), r = -15 - -12 = -3 ; u = 0.5 * (-1 + 3 - 2 * max(0, 1)) = 0
    p = pair(-13, -15, -12, -12)
    assert DPOP(beta=0.5, penalty=2.0)(p).loss.item() == pytest.approx(math.log(2), abs=1e-12)
    # penalty 5: u = 0.5 * (2 - 5) = -1.5
    assert DPOP(beta=0.5, penalty=5.0)(p).loss.item() == pytest.approx(softplus(1.5), abs=1e-12)
    assert DPOP(beta=0.5, penalty=0.0)(p).loss.item() == pytest.approx(DPO(0.5)(p).loss.item())


def test_dpop_gradient_raises_the_chosen_likelihood_harder() -> None:
    grads = []
    for objective in (DPO(0.5), DPOP(0.5, penalty=50.0)):
        p = pair(-13, -15, -12, -12, grad=True)
        objective(p).loss.backward()
        grads.append(p.policy_chosen.grad.item())
    assert grads[1] < grads[0] < 0  # descending the loss raises log pi(y_w), much more with the penalty


@pytest.mark.parametrize(
    ("build", "sentence"),
    [
        (lambda: ChiPO(0.1, r_max=0.0), "objective option r_max must be > 0 (or null for no clipping), got 0.0"),
        (lambda: DPOP(0.1, penalty=-1.0), "objective option penalty must be >= 0, got -1.0"),
    ],
)
def test_bad_options_are_one_sentence(build, sentence: str) -> None:
    with pytest.raises(InputError) as err:
        build()
    assert str(err.value) == sentence
