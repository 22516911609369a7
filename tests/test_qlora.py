"""QLoRA through the CLI on CPU: 4-bit base + LoRA trains with validation and the adapters-off reference pass
between steps, and exports both a merged dense model and the adapter, each loadable on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lit_daa.cli import main

pytest.importorskip("bitsandbytes")
pytest.importorskip("peft")
ROOT = Path(__file__).resolve().parents[1]


def scalars(root: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(root / "tensorboard"))
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


def batch_logps(model: torch.nn.Module) -> torch.Tensor:
    from lit_daa.logps import response_logps

    ids = torch.tensor([[3, 10, 4, 30, 31, 2], [3, 10, 4, 40, 2, 0]])
    mask = (torch.arange(6) < torch.tensor([[6], [5]])).long()
    response = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0]])
    with torch.no_grad():
        return response_logps(model.eval(), ids, mask, response)[0]


def test_qlora_trains_validates_and_exports_on_cpu(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = [
        "fit",
        "--config",
        str(ROOT / "configs" / "quickstart.yaml"),
        "--config",
        str(ROOT / "configs" / "presets" / "qlora.yaml"),
        # float32 compute on CPU keeps the export comparison tight; the preset's bf16 is for GPUs
        "--model.quantization.compute_dtype=float32",
        "--model.policy_dtype=float32",
        "--model.quantization.double_quant=true",
        "--trainer.precision=32-true",
        "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.max_steps=20",
        "--trainer.val_check_interval=5",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--model.optimizer.init_args.lr=2e-3",
        "--data.source.init_args.num_train=640",
        "--data.source.init_args.num_val=64",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    loss = scalars(tmp_path, "val/loss")
    assert sorted(loss) == [4, 9, 14, 19]  # validation every 5 steps, between training steps
    print("val/loss by step:", loss)
    assert loss[19] < loss[4] < 0.6932, loss  # the loss falls from log 2

    policy_dir, adapter_dir = tmp_path / "hf_policy", tmp_path / "hf_policy-adapter"
    assert f"policy (Hugging Face format): {policy_dir}" in out
    assert f"LoRA adapter (peft): {adapter_dir}" in out
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from lit_daa.models import resolve_model

    merged = AutoModelForCausalLM.from_pretrained(policy_dir)
    assert not hasattr(merged.config, "quantization_config")
    assert all(type(p).__name__ != "Params4bit" for p in merged.parameters())
    base = AutoModelForCausalLM.from_pretrained(
        resolve_model("embedded:neox-tiny"),
        dtype=torch.float32,
        quantization_config=BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32,
        ),
        device_map={"": "cpu"},
    )
    from lit_daa.quantization import FourBit

    adapted = PeftModel.from_pretrained(FourBit().keep_trainable_layout(base), adapter_dir)
    # the merged dense export computes what the trained 4-bit policy computes
    trained = batch_logps(adapted)
    assert torch.allclose(batch_logps(merged), trained, atol=1e-3), (batch_logps(merged), trained)
    with adapted.disable_adapter():
        assert not torch.allclose(batch_logps(adapted), trained, atol=1e-3)  # the adapter did change the policy
