"""Unpaired objectives (KTO, APO-zero unpaired, BCO) against values worked by hand; the KL reference point."""

from __future__ import annotations

import math

import pytest
import torch

from lit_daa.errors import InputError
from lit_daa.objectives import BCO, DPO, KTO, APOZeroUnpaired, RowLogps, Weighted


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def rows(policy, ref, kl_policy, kl_ref, label, grad=False) -> RowLogps:
    t = lambda v: torch.tensor([float(x) for x in v], dtype=torch.float64, requires_grad=grad)  # noqa: E731
    return RowLogps(t(policy), t(ref), t(kl_policy), t(kl_ref), torch.tensor(label), torch.full((len(label),), 3.0))


# r = log pi/pi_ref = [2, -1]; mismatched log-ratios [1, 3], so z0 = max(0, mean) = 2
ROWS = dict(policy=[-10, -14], ref=[-12, -13], kl_policy=[-11, -9], kl_ref=[-12, -12], label=[True, False])


def test_kto_hand_values_weights_and_rewards() -> None:
    out = KTO(beta=0.5, desirable_weight=2.0, undesirable_weight=1.0)(rows(**ROWS))
    # desirable: 2 * (1 - sig(0.5 * (2 - 2))) = 1 ; undesirable: 1 - sig(0.5 * (2 - -1)) = 1 - sig(1.5)
    expected = [1.0, 1.0 - sig(1.5)]
    assert out.losses.tolist() == pytest.approx(expected, abs=1e-12)
    assert out.loss.item() == pytest.approx(sum(expected) / 2, abs=1e-12)
    assert out.kl.item() == pytest.approx(2.0)
    assert out.rewards.tolist() == pytest.approx([1.0, -0.5])
    assert not out.rewards.requires_grad


def test_kto_reference_point_is_clamped_at_zero_and_detached() -> None:
    r = rows(**{**ROWS, "kl_policy": [-13, -14]}, grad=True)  # mismatched log-ratios [-1, -2]: mean < 0
    out = KTO(beta=0.5)(r)
    assert out.kl.item() == 0.0
    assert out.losses.tolist() == pytest.approx([1 - sig(1.0), 1 - sig(0.5)], abs=1e-12)
    out.loss.backward()
    assert r.kl_policy.grad is None or bool((r.kl_policy.grad == 0).all())  # z0 carries no gradient
    assert r.policy.grad[0] < 0 < r.policy.grad[1]  # descending raises desirable and lowers undesirable likelihoods


def test_kto_any_mix_of_labels() -> None:
    every = rows(policy=[-10, -11, -12], ref=[-12, -12, -12], kl_policy=[-12] * 3, kl_ref=[-12] * 3, label=[True] * 3)
    assert KTO(beta=1.0)(every).losses.tolist() == pytest.approx([1 - sig(2.0), 1 - sig(1.0), 0.5], abs=1e-12)
    none = rows(policy=[-10], ref=[-12], kl_policy=[-12], kl_ref=[-12], label=[False])
    assert KTO(beta=1.0)(none).loss.item() == pytest.approx(1 - sig(-2.0), abs=1e-12)


def test_apo_zero_unpaired_hand_values() -> None:
    out = APOZeroUnpaired(beta=0.5, undesirable_weight=3.0)(rows(**ROWS))
    # u = 0.5 * r = [1, -0.5]: desirable 1 - sig(1) ; undesirable 3 * sig(-0.5) ; no KL point
    assert out.losses.tolist() == pytest.approx([1 - sig(1.0), 3 * sig(-0.5)], abs=1e-12)
    assert out.kl is None


def test_bco_running_mean_shift_train_and_eval() -> None:
    bco = BCO(beta=0.5)
    out = bco(rows(**ROWS))  # rewards [1, -0.5], batch mean 0.25 = delta
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731  (-log sigmoid(-x))
    assert out.losses.tolist() == pytest.approx([softplus(-0.75), softplus(-0.75)], abs=1e-12)
    second = rows(policy=[-12, -12], ref=[-12, -14], kl_policy=[0, 0], kl_ref=[0, 0], label=[True, True])
    out = bco(second)  # rewards [0, 1], mean 0.5: delta = (0.25 + 0.5) / 2
    assert bco.delta.item() == pytest.approx(0.375)
    assert out.losses.tolist() == pytest.approx([softplus(0.375), softplus(-0.625)], abs=1e-12)
    bco.eval()
    bco(rows(**ROWS))
    assert bco.delta.item() == pytest.approx(0.375)  # evaluation reads delta, never moves it
    state = bco.state_dict()
    assert set(state) == {"reward_sum", "reward_count"}  # a checkpoint resumes the running mean


def test_unpaired_objectives_declare_it_and_refuse_bad_weights() -> None:
    assert KTO.unpaired and APOZeroUnpaired.unpaired and BCO.unpaired and not DPO.unpaired
    with pytest.raises(InputError) as err:
        KTO(0.1, desirable_weight=0.0)
    assert str(err.value) == "objective option desirable_weight must be > 0, got 0.0"
    with pytest.raises(InputError) as err:
        Weighted([KTO(0.1), DPO(0.1)])
    assert "Weighted objective parts must train on preference pairs, but KTO trains on unpaired rows" in str(err.value)


def test_row_logps_from_rows_splits_own_and_mismatched() -> None:
    sums = torch.tensor([-1.0, -2.0, -3.0, -4.0])
    r = RowLogps.from_rows(sums, torch.tensor([1.0, 2.0, 3.0, 4.0]), sums - 1, torch.tensor([1, 0]))
    assert r.policy.tolist() == [-1.0, -2.0] and r.kl_policy.tolist() == [-3.0, -4.0]
    assert r.log_ratios().tolist() == [1.0, 1.0] and r.label.tolist() == [True, False]
    assert r.kl_estimate().item() == 1.0
