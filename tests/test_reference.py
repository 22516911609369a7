"""The reference rule: which reference each case gets, and that each gives the base model's log-probs."""

from __future__ import annotations

import pytest
import torch

from lit_daa.adapters import LoRA
from lit_daa.errors import InputError
from lit_daa.layouts import sequence_batch
from lit_daa.logps import batch_logps
from lit_daa.models import describe_model, load_causal_lm, load_tokenizer
from lit_daa.module import DAAModule
from lit_daa.objectives import DPO, SFT, SimPO
from lit_daa.quantization import FourBit
from lit_daa.reference import AdaptersOff, CachedReference, FrozenCopy, NoReference
from lit_daa.scoring import score_pairs


def built(**options) -> DAAModule:
    """A DAAModule with its models built, as the Trainer's configure_model call does."""
    module = DAAModule(**options)
    module.configure_model()
    return module


def batch() -> dict[str, torch.Tensor]:
    """Two sequences, prompt [3, 10, 4] with responses [30, 31, 2] and [40, 2]."""
    return sequence_batch([[3, 10, 4], [3, 10, 4]], [[30, 31, 2], [40, 2]])


def base_logps() -> torch.Tensor:
    b = batch()
    with torch.no_grad():
        return batch_logps(load_causal_lm("embedded:neox-tiny"), b)[0]


@pytest.mark.parametrize("objective", [SimPO(), SFT()])
def test_reference_free_objectives_load_nothing(objective) -> None:
    module = built(objective=objective)
    assert isinstance(module.reference, NoReference)
    assert module.reference.logps(batch()) is None


def test_full_finetuning_gets_a_frozen_copy_outside_the_state_dict() -> None:
    module = built(objective=DPO(0.1))
    assert isinstance(module.reference, FrozenCopy)
    assert not any(p.requires_grad for p in module.reference.model.parameters())
    assert not module.reference.model.training
    assert all(k.startswith(("policy.", "objective.")) for k in module.state_dict())
    assert torch.allclose(module.reference.logps(batch()), base_logps())
    module.to(torch.float64)  # moves of the LightningModule reach the reference too
    assert next(module.reference.model.parameters()).dtype == torch.float64


def test_precomputed_reference_logps_win() -> None:
    module = built(objective=DPO(0.1))
    cached = torch.tensor([-1.0, -2.0])
    assert torch.equal(module.reference.logps({**batch(), "ref_logps": cached}), cached)


def test_lora_policy_uses_itself_with_adapters_off_and_trains_only_adapters() -> None:
    module = built(objective=DPO(0.1), lora=LoRA(r=4, alpha=8))
    assert isinstance(module.reference, AdaptersOff)
    # LoRA B starts at zero, so move the adapters first: the reference must still be the base model
    for name, p in module.policy.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    assert torch.allclose(module.reference.logps(batch()), base_logps(), atol=1e-5)
    policy_now = batch_logps(module.policy, batch())[0]
    assert not torch.allclose(policy_now, base_logps(), atol=1e-3)
    trainable = [n for n, p in module.policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert module.policy.training  # disabling adapters for the reference pass restores train mode


def test_explicit_reference_beside_lora_is_a_frozen_copy() -> None:
    module = built(objective=DPO(0.1), lora=LoRA(r=4), reference="embedded:neox-tiny")
    assert isinstance(module.reference, FrozenCopy)


def test_qlora_4bit_policy_trains_on_cpu() -> None:
    pytest.importorskip("bitsandbytes")
    module = built(objective=DPO(0.1), lora=LoRA(r=4), quantization=FourBit(compute_dtype="float32"))
    assert isinstance(module.reference, AdaptersOff)
    out = score_pairs(module.policy, module.reference, module.objective, batch()).output
    out.loss.backward()
    grads = [p.grad for n, p in module.policy.named_parameters() if "lora_A" in n]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_cached_reference_loads_no_model_and_names_the_missing_columns() -> None:
    module = built(objective=DPO(0.1), cached_reference=True)
    assert isinstance(module.reference, CachedReference)
    assert not list(module.reference.parameters())
    cached = torch.tensor([-1.0, -2.0])
    assert torch.equal(module.reference.logps({**batch(), "ref_logps": cached}), cached)
    with pytest.raises(InputError, match="ref_chosen_logps and ref_rejected_logps"):
        module.reference.logps(batch())


def test_reference_is_a_child_module_but_never_trained_nor_saved() -> None:
    module = built(objective=DPO(0.1))
    # visible to strategies: a child, so device/dtype moves and sharding reach it
    assert any(child is module.reference for child in module.children())
    module.train()
    assert module.policy.training and not module.reference.model.training
    assert not any(k.startswith("reference.") for k in module.state_dict())
    # a checkpoint without the reference loads strictly into a module that has one
    other = built(objective=DPO(0.1))
    with torch.no_grad():
        for p in module.policy.parameters():
            p.add_(0.01)
    assert not other.load_state_dict(module.state_dict(), strict=True).missing_keys
    assert all(torch.equal(a, b) for a, b in zip(module.policy.parameters(), other.policy.parameters(), strict=True))
    # ... and a truly missing policy key is still reported
    partial = {k: v for k, v in module.state_dict().items() if not k.endswith("embed_in.weight")}
    with pytest.raises(RuntimeError, match="embed_in"):
        other.load_state_dict(partial, strict=True)


def test_configure_model_is_idempotent() -> None:
    module = built(objective=DPO(0.1))
    policy, reference = module.policy, module.reference
    module.configure_model()
    assert module.policy is policy and module.reference is reference


@pytest.fixture(scope="module")
def sft_adapter(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A LoRA adapter over neox-tiny with random (nonzero) weights, saved as peft saves it: no tokenizer beside it."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["query_key_value", "dense_4h_to_h"], init_lora_weights=False)
    folder = tmp_path_factory.mktemp("sft-adapter")
    get_peft_model(load_causal_lm("embedded:neox-tiny"), config).save_pretrained(folder)
    return str(folder)


def sft_logps(adapter: str) -> torch.Tensor:
    """The SFT model's log-probs, computed independently: peft's unmerged base + adapter."""
    from peft import PeftModel

    with torch.no_grad():
        return batch_logps(PeftModel.from_pretrained(load_causal_lm("embedded:neox-tiny"), adapter), batch())[0]


@pytest.mark.parametrize("lora", [None, LoRA(r=4, alpha=8)], ids=["full", "fresh-lora"])
def test_a_policy_started_from_an_adapter_has_that_adapter_as_its_reference(sft_adapter: str, lora) -> None:
    module = built(objective=DPO(0.1), policy=sft_adapter, lora=lora)
    assert isinstance(module.reference, AdaptersOff if lora else FrozenCopy)
    expected = sft_logps(sft_adapter)
    assert not torch.allclose(expected, base_logps(), atol=1e-3)  # the adapter moves the model: the test can fail
    assert torch.allclose(module.reference.logps(batch()), expected, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(batch_logps(module.policy, batch())[0], expected, atol=1e-5)  # training starts there
    trainable = [n for n, p in module.policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable) == (lora is not None)
    assert module.tokenizer.get_vocab() == load_tokenizer("embedded:neox-tiny").get_vocab()  # the base's tokenizer


def test_an_adapter_as_explicit_reference_is_the_sft_model(sft_adapter: str) -> None:
    module = built(objective=DPO(0.1), lora=LoRA(r=4), reference=sft_adapter)
    assert isinstance(module.reference, FrozenCopy)
    assert torch.allclose(module.reference.logps(batch()), sft_logps(sft_adapter), atol=1e-5)
    assert "(a LoRA adapter, merged into its base" in describe_model(sft_adapter)


def test_an_adapter_over_a_4bit_base_is_refused(sft_adapter: str) -> None:
    with pytest.raises(InputError, match="is a LoRA adapter, which cannot be merged into a 4-bit base"):
        load_causal_lm(sft_adapter, quantization=FourBit(compute_dtype="float32"))
