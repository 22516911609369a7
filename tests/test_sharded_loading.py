"""Loading under FSDP2: rank 0 loads, the other ranks build empty models and receive their shards.

Two gloo processes run the real `DAAModule.configure_model` under `FSDP2Strategy` and check, on every rank, that what
the shards hold, gathered, is exactly `from_pretrained`'s model (buffers and LoRA adapters included), and that a
batch's log-probs equal the old path's (every rank loading the whole model, then sharding).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(worker: Any, *args: Any) -> None:
    """Run `worker(rank, *args)` in 2 processes forked from this one (so nothing is imported twice); a failed
    assertion in either is raised here with its traceback."""
    mp.start_processes(worker, args=(free_port(), *args), nprocs=2, start_method="fork")


def fsdp2_trainer(port: int, rank: int) -> Any:
    """A Trainer of 2 CPU ranks under fp32 FSDP2, with its process group up, as Lightning's launcher leaves it."""
    from lightning.pytorch import Trainer

    from lit_daa.strategies import FSDP2Strategy

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank), NODE_RANK="0")
    torch.set_num_threads(1)
    strategy = FSDP2Strategy(param_dtype="float32", reference_param_dtype="float32")
    trainer = Trainer(accelerator="cpu", devices=2, strategy=strategy, logger=False, enable_checkpointing=False)
    return trainer


def configured(trainer: Any, mesh: Any, seed: int = 0, **options: Any) -> Any:
    """A DAAModule whose configure_model ran with `mesh` (None: no sharding, every rank loads its own copy)."""
    from lit_daa.module import DAAModule

    module = DAAModule(**options)
    module.trainer = trainer
    trainer.strategy.connect(module)
    module._device_mesh = mesh
    torch.manual_seed(seed)  # LoRA's random init: the same draw as on one process
    module.configure_model()
    return module


def plain(name: str, lora: Any = None, seed: int = 0) -> torch.nn.Module:
    """The model as one process loads it: `from_pretrained` (an adapter merged in), then fresh LoRA if any."""
    from lit_daa.models import load_causal_lm

    model = load_causal_lm(name)
    torch.manual_seed(seed)
    return lora.apply(model) if lora is not None else model


def assert_holds(sharded: torch.nn.Module, expected: torch.nn.Module, what: str) -> None:
    """The full state dict gathered from `sharded`'s shards, and its buffers, equal `expected`'s exactly."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    gathered = get_model_state_dict(sharded, options=StateDictOptions(full_state_dict=True))
    reference = expected.state_dict()
    assert gathered.keys() == reference.keys(), (what, gathered.keys() ^ reference.keys())
    for key, value in reference.items():
        assert torch.equal(gathered[key], value), f"{what}: {key} differs from from_pretrained's"
    buffers = dict(expected.named_buffers())  # non-persistent ones (rotary inv_freq) included
    held = dict(sharded.named_buffers())
    assert held.keys() == buffers.keys() and buffers, what
    for key, value in buffers.items():
        assert torch.equal(held[key], value), f"{what}: buffer {key} differs from from_pretrained's"


def modes(model: torch.nn.Module) -> list[tuple[bool, float | None, bool | None]]:
    """Each module's train/eval mode, dropout probability and activation checkpointing flag."""
    return [(m.training, getattr(m, "p", None), getattr(m, "gradient_checkpointing", None)) for m in model.modules()]


def logps(model: torch.nn.Module) -> torch.Tensor:
    """Per-token log-probs of a fixed batch (both ranks run the same forward, as FSDP2 needs)."""
    ids = torch.tensor([[3, 10, 4, 30, 31, 2, 7, 9], [5, 6, 7, 8, 40, 41, 42, 2]])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()
    return torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]


def check_loading(rank: int, port: int, llama: str, adapter: str) -> None:
    from lit_daa import sharded_loading
    from lit_daa.adapters import LoRA
    from lit_daa.reference import AdaptersOff, FrozenCopy
    from lit_daa.sharded_loading import RankZeroLoad

    trainer = fsdp2_trainer(port, rank)
    from lit_daa.module import DAAModule

    trainer.strategy.connect(DAAModule())  # setup_environment hands the module its device mesh
    trainer.strategy.setup_environment()
    mesh = trainer.strategy.device_mesh
    assert RankZeroLoad.of(mesh) == RankZeroLoad(active=True, empty=rank == 1)
    lora = LoRA(r=4, alpha=8)
    cases = {
        "neox": ({"policy": "embedded:neox-tiny"}, "embedded:neox-tiny"),
        "llama tied": ({"policy": llama}, llama),
        # LoRA policy (adapters off as reference) and LoRA policy with an SFT adapter folder as frozen reference
        "neox lora": ({"policy": "embedded:neox-tiny", "lora": lora, "activation_checkpointing": True}, None),
        "neox lora, adapter reference": ({"policy": "embedded:neox-tiny", "lora": lora, "reference": adapter}, adapter),
    }
    for what, (options, reference) in cases.items():
        # the tied model is sent module by module (a real model's way, in groups); the others in one group
        sharded_loading.MIN_GROUP_BYTES = 0 if what == "llama tied" else 1 << 20
        new = configured(trainer, mesh, **options)
        old = configured(trainer, None, **options)  # the old path: every rank loads, then shards
        trainer.strategy.sharding.shard(old.policy, old.reference.shardable(), mesh)

        assert_holds(new.policy, plain(options["policy"], options.get("lora")), f"{what}: policy")
        if reference is None:
            assert isinstance(new.reference, AdaptersOff)
        else:
            assert isinstance(new.reference, FrozenCopy)
            assert_holds(new.reference.model, plain(reference), f"{what}: reference")
            assert modes(new.reference.model) == modes(old.reference.model), what
            assert torch.equal(logps(new.reference.model), logps(old.reference.model)), what
        assert torch.equal(logps(new.policy), logps(old.policy)), f"{what}: policy log-probs differ from the old path's"
        assert modes(new.policy) == modes(old.policy), f"{what}: modes, dropout or checkpointing differ"
        if what == "llama tied":  # still one parameter, sharded once
            assert new.policy.lm_head.weight is new.policy.model.embed_tokens.weight
    # every rank leaves configure_model with the same random state, as when each loaded its own copy
    states = [None, None]
    dist.all_gather_object(states, torch.get_rng_state())
    assert torch.equal(states[0], states[1])
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Llama-shaped tiny model whose LM head is tied to its embedding, saved with its tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from lit_daa.synthetic.tokenizer import build_word_tokenizer
    from lit_daa.synthetic.world import vocabulary

    folder = tmp_path_factory.mktemp("llama-tied")
    tokenizer = build_word_tokenizer(vocabulary())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(1)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def sft_adapter(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A LoRA adapter folder over embedded:neox-tiny with non-zero weights (an SFT adapter, merged when loaded)."""
    from lit_daa.adapters import LoRA
    from lit_daa.models import load_causal_lm

    folder = tmp_path_factory.mktemp("sft-adapter")
    torch.manual_seed(2)
    model = LoRA(r=4).apply(load_causal_lm("embedded:neox-tiny"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    model.save_pretrained(folder)
    load_causal_lm(str(folder))  # peft's loading imports, once here rather than in each rank
    return str(folder)


def test_rank0_loading_equals_from_pretrained_and_the_old_path(tiny_llama: str, sft_adapter: str) -> None:
    import lightning.pytorch  # noqa: F401  imported once, before the fork, not by each rank
    import peft  # noqa: F401
    import torch.distributed.checkpoint.state_dict  # noqa: F401
    import torch.distributed.fsdp  # noqa: F401

    import lit_daa.module  # noqa: F401
    import lit_daa.strategies  # noqa: F401
    from lit_daa.models import resolve_model

    resolve_model("embedded:neox-tiny")  # built once here, before the ranks start
    run_two_ranks(check_loading, tiny_llama, sft_adapter)


@pytest.mark.slow
def test_a_node_holds_about_one_copy_of_each_model_while_loading(tmp_path: Path) -> None:
    """2 gloo processes load a ~302M-parameter GPT-NeoX as policy and frozen reference through configure_model
    (benchmarks/load_memory.py): rank 1 holds its shards, not the models, and the node about one copy of each."""
    import json
    import subprocess
    import sys

    out = tmp_path / "memory.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "load_memory.py"), "--json", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    numbers = json.loads(out.read_text())
    copy, idle = numbers["copy"], numbers["idle"]
    old, new = numbers["old"], numbers["new"]
    idle_peak, idle_anon = max(idle["peaks"]), max(idle["anon"])
    # the old path: every process held both whole models
    assert min(old["anon"]) - idle_anon > 1.8 * copy, (old, idle, copy)
    # rank 1 holds half of each model (its shards) plus a tensor in flight: well below one copy per model
    assert new["peaks"][1] - idle_peak < 0.7 * 2 * copy, (new, idle, copy)
    # rank 0 holds one copy of each model while it sends them, not a copy plus its shards
    assert new["anon"][0] - idle_anon < 1.2 * 2 * copy, (new, idle, copy)
    # the node: about one copy of each model at any moment, beyond each process's overhead (plus the bf16
    # checkpoint's pages that rank 0 maps while reading it: half a float32 copy), where the old path held two each
    assert new["node"] - idle["node"] < 1.4 * 2 * copy, (new, idle, copy)
    assert old["node"] - new["node"] > 0.8 * 2 * copy, (old, new, copy)
