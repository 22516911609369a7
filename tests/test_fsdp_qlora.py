"""QLoRA under FSDP2: the 4-bit base sharded with the policy, held in the dtype FSDP2 gathers it in.

The known trap (accelerate issue #3983): 4-bit weights held in a dtype FSDP2 casts give a loss of 0 or NaN, or here,
silently wrong weights. Shown in one process (a 1-rank gloo group, fast) and refused at the CLI; the 2-process run
is checked against a 1-process QLoRA run on the same batches (slow).
"""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_distributed import FP32_FSDP2, ROOT, fit, scalars

from lit_daa.cli import main  # imported at collection: Lightning's log handlers bind the real stderr, not capsys'

pytest.importorskip("bitsandbytes")
pytest.importorskip("peft")

QLORA_FP32 = [  # float32 throughout on the CPU, so the two runs can be compared tightly; the preset's bf16 is for GPUs
    "--config",
    str(ROOT / "configs" / "presets" / "qlora.yaml"),
    "--model.quantization.compute_dtype=float32",
    "--model.policy_dtype=float32",
    "--trainer.precision=32-true",
    "--model.lora.dropout=0.0",
]


@pytest.fixture
def one_rank_group() -> Iterator[None]:
    """A 1-process gloo group: FSDP2 casts and gathers exactly as on many ranks, at no launch cost."""
    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def tiny_qlora(storage: str | None) -> torch.nn.Module:
    """neox-tiny in 4 bits (float32 base and compute) with LoRA adapters whose B is not zero, so they count."""
    from lit_daa.adapters import LoRA
    from lit_daa.models import load_causal_lm
    from lit_daa.quantization import FourBit

    model = load_causal_lm("embedded:neox-tiny", quantization=FourBit(compute_dtype="float32", quant_storage=storage))
    torch.manual_seed(0)  # lora_A's random initialisation
    model = LoRA(r=4).apply(model)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(0)) * 0.05)
    return model.eval()


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([[3, 10, 4, 30, 31, 2]])).logits.float()


def test_4bit_weights_held_in_another_float_dtype_are_silently_wrong_under_fsdp2(one_rank_group: None) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from lit_daa.sharding import FSDP2Sharding

    mesh = init_device_mesh("cpu", (1,))
    bf16 = MixedPrecisionPolicy(param_dtype=torch.bfloat16)
    expected = logits(tiny_qlora(None))

    # The trap: packed 4-bit bytes held as float16 and gathered in bfloat16 are cast as numbers. Nothing fails.
    trapped = tiny_qlora("float16")
    for block in trapped.base_model.model.gpt_neox.layers:
        fully_shard(block, mesh=mesh, mp_policy=bf16)
    fully_shard(trapped, mesh=mesh, mp_policy=bf16)
    wrong = logits(trapped)
    # lit-daa's sharding holds them in the gather dtype first (the same bytes, re-viewed): only bf16 rounding is left
    fixed = tiny_qlora(None)
    FSDP2Sharding(param_dtype="bfloat16").shard(fixed, None, mesh)
    right = logits(fixed)

    rounding = (right - expected).abs().max().item()
    assert rounding < 0.05, rounding  # bfloat16 compute of the same 4-bit weights
    assert not torch.isfinite(wrong).all() or (wrong - expected).abs().max().item() > 20 * rounding, (
        (wrong - expected).abs().max().item(),
        rounding,
    )


def test_fsdp2_on_one_rank_computes_what_the_unsharded_4bit_policy_computes(one_rank_group: None) -> None:
    from torch.distributed.device_mesh import init_device_mesh

    from lit_daa.quantization import is_4bit
    from lit_daa.sharding import FSDP2Sharding

    expected = logits(tiny_qlora(None))
    model = tiny_qlora(None)
    assert is_4bit(model)
    FSDP2Sharding(param_dtype="float32", reference_param_dtype="float32").shard(
        model, None, init_device_mesh("cpu", (1,))
    )
    assert torch.equal(logits(model), expected)  # float32 everywhere: the same bytes, the same kernels
    with model.disable_adapter():  # the reference (adapters off) is the 4-bit base itself
        assert not torch.allclose(logits(model), expected, atol=1e-3)


def test_a_chosen_storage_fsdp2_would_cast_is_refused_before_sharding() -> None:
    from lit_daa.errors import InputError
    from lit_daa.sharding import FSDP2Sharding

    with pytest.raises(InputError) as refused:
        FSDP2Sharding(param_dtype="bfloat16").shard(tiny_qlora("uint8"), None, mesh=_NoTensorParallel())
    assert str(refused.value) == (
        "model.quantization.quant_storage uint8 cannot be sharded by FSDP2, which needs the packed 4-bit weights "
        "held in the dtype it gathers the policy in, bfloat16 (trainer.strategy.param_dtype, else "
        "model.policy_dtype), or it may cast or drop them (a loss of 0 or NaN): set model.quantization.quant_storage "
        "to bfloat16 or leave it null"
    )


class _NoTensorParallel:
    """Stands for a 1-D data-parallel mesh: the 4-bit check runs before the mesh is used."""

    mesh_dim_names = ("data_parallel",)


@pytest.mark.parametrize(
    ("strategy", "storage", "wanted"),
    [
        (["--trainer.strategy=fsdp2"], "uint8", "bfloat16"),
        (FP32_FSDP2, "bfloat16", "float32"),
    ],
    ids=["uint8-fsdp2", "bf16-under-fp32"],
)
def test_a_storage_fsdp2_would_cast_is_refused_at_the_cli_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture, strategy: list[str], storage: str, wanted: str
) -> None:
    argv = ["fit", "--config", str(ROOT / "configs" / "quickstart.yaml"), *QLORA_FP32, *strategy]
    argv += [f"--model.quantization.quant_storage={storage}", f"--trainer.default_root_dir={tmp_path}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"lit-daa: error: model.quantization.quant_storage {storage} cannot be sharded by FSDP2, which needs the "
        f"packed 4-bit weights held in the dtype it gathers the policy in, {wanted} (trainer.strategy.param_dtype, "
        "else model.policy_dtype), or it may cast or drop them (a loss of 0 or NaN): set "
        f"model.quantization.quant_storage to {wanted} or leave it null"
    )
    assert not (tmp_path / "checkpoints").exists()  # refused before anything ran


def test_without_a_param_dtype_the_storage_must_be_the_policy_dtype() -> None:
    from jsonargparse import Namespace

    from lit_daa.errors import InputError
    from lit_daa.sharding import check_quantized_sharding

    strategy = Namespace(class_path="lit_daa.strategies.FSDP2Strategy", init_args=Namespace(param_dtype=None))
    four_bit = Namespace(class_path="lit_daa.quantization.FourBit", init_args=Namespace(quant_storage="float32"))
    check_quantized_sharding(strategy, four_bit, "float32")  # gathered as stored: float32
    check_quantized_sharding("ddp", four_bit, "bfloat16")  # nothing is sharded
    with pytest.raises(InputError, match="quant_storage float32 cannot be sharded by FSDP2.* to bfloat16 or leave"):
        check_quantized_sharding(strategy, four_bit, "bfloat16")


@pytest.mark.slow
def test_fsdp_qlora_on_two_processes_matches_one_process(tmp_path: Path) -> None:
    steps = ["--trainer.max_steps=4", "--trainer.val_check_interval=2", "--trainer.log_every_n_steps=1"]
    two = fit(tmp_path / "two", *QLORA_FP32, *FP32_FSDP2, *steps, devices=2)
    assert two.returncode == 0, two.stderr[-3000:]
    one = fit(tmp_path / "one", *QLORA_FP32, *steps)
    assert one.returncode == 0, one.stderr[-3000:]

    # Tolerance 1e-5: both runs hold bit-identical 4-bit weights (the same NF4 quantization of the same float32
    # checkpoint; FSDP2's float storage is the same bytes re-viewed), so no 4-bit rounding separates them, only the
    # order of float32 sums (a global batch split over 2 ranks, gradients summed by the reduce-scatter).
    # Validation metrics are reduced over ranks; rank 0's logged training loss covers its own rows only.
    for tag in ("val/loss", "val/logps/chosen", "val/logps/rejected"):
        a, b = scalars(tmp_path / "one", tag), scalars(tmp_path / "two", tag)
        assert a.keys() == b.keys() and len(a) == 2, tag  # after 2 and 4 optimizer steps
        for step in a:
            assert abs(a[step] - b[step]) < 1e-5 * max(1.0, abs(a[step])), (tag, step, a[step], b[step])
    losses = scalars(tmp_path / "two", "train/loss")
    assert len(losses) == 4 and all(math.isfinite(v) and v != 0 for v in losses.values()), losses
    assert scalars(tmp_path / "two", "val/logps/chosen")[3] < -1  # log-probs of a real (not zeroed) model

    # the optimizer steps moved the adapters (B starts at zero) by the same amounts in both runs
    adapter = Path("hf_policy-adapter") / "adapter_model.safetensors"
    w1, w2 = load_file(tmp_path / "one" / adapter), load_file(tmp_path / "two" / adapter)
    assert w1.keys() == w2.keys() and any("lora_B" in k for k in w1)
    for key in w1:
        assert torch.allclose(w1[key], w2[key], atol=1e-5, rtol=0), key
        assert "lora_B" not in key or w2[key].abs().max() > 1e-4, key
    # the merged export (4-bit base dequantized, adapters merged) from the shards equals the 1-process export
    m1 = load_file(tmp_path / "one" / "hf_policy" / "model.safetensors")
    m2 = load_file(tmp_path / "two" / "hf_policy" / "model.safetensors")
    assert m1.keys() == m2.keys()
    for key in m1:
        assert torch.allclose(m1[key], m2[key], atol=1e-5, rtol=0), key


def test_an_unknown_storage_dtype_is_one_sentence() -> None:
    from lit_daa.errors import InputError
    from lit_daa.quantization import FourBit

    with pytest.raises(InputError) as refused:
        FourBit(quant_storage="int4")
    assert str(refused.value) == (
        "model.quantization.quant_storage must be one of ['bfloat16', 'float16', 'float32', 'uint8'] or null, "
        "got 'int4'"
    )
