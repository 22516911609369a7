"""The worker of `step_benchmark.py`: one framework (or lit-daa layout) trained in its own process, timed."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# lit-daa's variants: the layout a batch is laid out in, and whether reference log-probs come from the cache
VARIANTS: dict[str, dict[str, Any]] = {
    "lit-daa": {"layout": "Concatenated", "cached": False},
    "lit-daa-shared": {"layout": "SharedPrompt", "cached": False},
    "lit-daa-packed": {"layout": "Packed", "cached": False},
    "lit-daa-shared-cached": {"layout": "SharedPrompt", "cached": True},
    "lit-daa-packed-cached": {"layout": "Packed", "cached": True},
    # packed rows with segment attention (`lit_daa.segment_attention`): no dense mask, each pair's segments only
    "lit-daa-packed-segments": {"layout": "Packed", "cached": False, "attn": "segments"},
    "lit-daa-shared-segments": {"layout": "SharedPrompt", "cached": False, "attn": "segments"},
}


# the LM head lit-daa scores with (`lit_daa.logps.DEFAULT_HEAD`): the default, or one of its two heads
HEADS = ("default", "chunked", "logits")


def use_head(name: str) -> None:
    """Make `name` the head of every scoring pass in this process (`--heads`)."""
    from lit_daa import logps

    heads = {"chunked": logps.ChunkedHead, "logits": logps.LogitsHead}
    if name in heads:
        logps.DEFAULT_HEAD = heads[name]()


def current_rss_mib() -> float:
    """Resident set size of this process now (Linux /proc; psutil elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mib() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def cpu_name() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs"


class Recorder:
    """Step-boundary timestamps and per-step loss/tokens/shape, kept on device until the end (no extra syncs)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.start: float | None = None
        self.times: list[float] = []
        self.losses: list[Any] = []
        self.tokens: list[Any] = []
        self.shapes: list[list[int]] = []
        self.loaded_mib: float | None = None  # memory in use once the models are loaded, before step 1

    def now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        return time.perf_counter()

    def begin(self) -> None:
        self.start = self.now()
        if self.cuda:
            import torch

            self.loaded_mib = torch.cuda.memory_allocated() / 2**20
        else:
            self.loaded_mib = current_rss_mib()

    def batch(self, loss: Any, input_ids: Any, real_tokens: Any) -> None:
        """Record a step's loss, the real (non-padding) tokens the model computed, and the padded shape."""
        self.losses.append(loss.detach().float())
        self.tokens.append(real_tokens)
        self.shapes.append(list(input_ids.shape))

    def step_end(self) -> None:
        self.times.append(self.now())


def worker_main(framework: str, spec_path: Path, result_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    import torch

    cuda = spec["device"] == "cuda"
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    if cuda:
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats()
    # Import the whole framework before taking the baseline: the memory reported is what training adds.
    if framework == "trl":
        from trl import DPOConfig, DPOTrainer  # noqa: F401
    else:
        import lit_daa.data.datamodule  # noqa: F401
        import lit_daa.module  # noqa: F401

        use_head(spec.get("head", "default"))
    baseline_rss = current_rss_mib()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = time.perf_counter()
    recorder = Recorder(cuda)
    extra = run_trl(spec, recorder) if framework == "trl" else run_lit_daa(spec, recorder, VARIANTS[framework])
    steps, warmup, batch = spec["steps"], spec["warmup"], spec["batch_size"]
    if len(recorder.times) != steps or len(recorder.losses) != steps:
        raise RuntimeError(f"recorded {len(recorder.times)} step ends and {len(recorder.losses)} losses, not {steps}")
    assert recorder.start is not None
    boundaries = [recorder.times[warmup - 1] if warmup > 0 else recorder.start, *recorder.times[warmup:]]
    window = boundaries[-1] - boundaries[0]
    step_ms = [1000 * (b - a) for a, b in zip(boundaries[:-1], boundaries[1:], strict=True)]
    versions = {"torch": torch.__version__}
    for mod in ("lightning", "transformers", "trl"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            pass
    if cuda:
        versions["cuda"] = torch.version.cuda
        peak = torch.cuda.max_memory_allocated() / 2**20
        device_name = torch.cuda.get_device_name(0)
    else:
        peak = peak_rss_mib() - baseline_rss
        recorder.loaded_mib = None if recorder.loaded_mib is None else recorder.loaded_mib - baseline_rss
        device_name = cpu_name() + f", torch threads {torch.get_num_threads()}"
    result = {
        "framework": framework,
        "batch_size": batch,
        "pairs_per_s": (steps - warmup) * batch / window,
        "median_step_ms": statistics.median(step_ms),
        "step_ms": step_ms,
        "peak_mem_mib": peak,
        # working memory: what the steps add to the loaded models (activations, logits, gradients, optimizer state)
        "loaded_mem_mib": recorder.loaded_mib,
        "working_mem_mib": None if recorder.loaded_mib is None else peak - recorder.loaded_mib,
        "head": spec.get("head", "default"),
        "baseline_rss_mib": baseline_rss,
        "setup_s": (recorder.start or t0) - t0,
        "losses": [float(x) for x in torch.stack(recorder.losses).cpu()],
        "tokens": [int(x) for x in torch.stack(recorder.tokens).cpu()],
        "shapes": recorder.shapes,
        "device_name": device_name,
        "load": [round(load_start, 2), round(os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"), 2)],
        "versions": versions,
        **extra,
    }
    result_path.write_text(json.dumps(result))
    return 0


def optimizer_factory(spec: dict[str, Any]):
    import functools

    import torch

    kwargs = {"lr": spec["lr"], "weight_decay": 0.0}
    if spec["fused_adamw"]:
        kwargs["fused"] = True
    return functools.partial(torch.optim.AdamW, **kwargs)


def data_module(spec: dict[str, Any], layout: str = "Concatenated") -> Any:
    """lit-daa's data module over the benchmark's pairs (both frameworks take their row order from it)."""
    from lit_daa import layouts
    from lit_daa.data.datamodule import PreferenceDataModule

    return PreferenceDataModule(
        tokenizer=spec["model_path"],
        train_path=spec["pairs_path"],
        val_fraction=0.0,
        max_length=spec["max_length"],
        max_prompt_length=spec["max_prompt_length"],
        batch_size=spec["batch_size"],
        num_workers=0,
        seed=spec["data_seed"],
        layout=getattr(layouts, layout)(**({"token_budget": spec["token_budget"]} if layout == "Packed" else {})),
        bucket_batches=spec["bucket_batches"],
    )


def run_lit_daa(spec: dict[str, Any], recorder: Recorder, variant: dict[str, Any]) -> dict[str, Any]:
    import lightning as L
    import torch

    from lit_daa.layouts import real_tokens
    from lit_daa.module import DAAModule
    from lit_daa.objectives import DPO
    from lit_daa.reference_cache import fill_reference_cache

    class StepClock(L.Callback):
        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            recorder.begin()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            recorder.batch(outputs["loss"], batch["input_ids"], real_tokens(batch))
            recorder.step_end()

    L.seed_everything(0, verbose=False)
    cuda = spec["device"] == "cuda"
    module = DAAModule(
        policy=spec["model_path"],
        objective=DPO(beta=spec["beta"]),
        optimizer=optimizer_factory(spec),
        cached_reference=variant["cached"],
        # packing pays off on GPUs with FlexAttention, which skips the blocks a packed row's mask hides
        attn_implementation=variant.get("attn")
        or ("flex_attention" if cuda and variant["layout"] == "Packed" else None),
    )
    data = data_module(spec, variant["layout"])
    precompute_s = 0.0
    if variant["cached"]:  # the cache a sweep fills once; timed here, amortised in the report
        data.prepare_data()
        data.setup("fit")
        start = time.perf_counter()
        device = torch.device("cuda" if cuda else "cpu")
        fill_reference_cache(data, spec["model_path"], "float32", device, module._load_reference)
        precompute_s = time.perf_counter() - start
    trainer = L.Trainer(
        accelerator="gpu" if cuda else "cpu",
        devices=1,
        precision="bf16-mixed" if cuda else "32-true",
        max_steps=spec["steps"],
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        gradient_clip_val=spec["grad_clip"] or None,
        callbacks=[StepClock()],
        default_root_dir=str(Path(spec["workdir"]) / "lit-daa"),
    )
    trainer.fit(module, datamodule=data)
    params = sum(p.numel() for p in module.policy.parameters())
    return {"params_m": params / 1e6, "precompute_s": precompute_s, "num_pairs": spec["num_pairs"]}


def lit_daa_order(spec: dict[str, Any]) -> list[int]:
    """The rows of lit-daa's first epoch, in the order its train loader serves them (length buckets included)."""
    data = data_module(spec)
    data.setup("fit")
    return data.train_dataloader().sampler.epoch_indices(0)


def run_trl(spec: dict[str, Any], recorder: Recorder) -> dict[str, Any]:
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from lit_daa.models import load_causal_lm, load_tokenizer

    class SequentialDPOTrainer(DPOTrainer):
        """DPOTrainer that keeps the given row order and records each step's loss and batch."""

        def _get_train_sampler(self, train_dataset=None):  # noqa: ANN001 - signature varies across versions
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if model.training:
                value = loss[0] if isinstance(loss, tuple) else loss
                recorder.batch(value, inputs["input_ids"], inputs["attention_mask"].sum())
            return loss

    class StepClock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            recorder.begin()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            recorder.step_end()

    cuda = spec["device"] == "cuda"
    rows = [json.loads(line) for line in Path(spec["pairs_path"]).read_text().splitlines()]
    ordered = [rows[i] for i in lit_daa_order(spec)]
    dataset = Dataset.from_list(ordered)
    policy = load_causal_lm(spec["model_path"], "float32")
    reference = load_causal_lm(spec["model_path"], "float32", "model.reference").eval().requires_grad_(False)
    tokenizer = load_tokenizer(spec["model_path"])
    config = DPOConfig(
        output_dir=str(Path(spec["workdir"]) / "trl"),
        per_device_train_batch_size=spec["batch_size"],
        gradient_accumulation_steps=1,
        max_steps=spec["steps"],
        learning_rate=spec["lr"],
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        optim="adamw_torch_fused" if spec["fused_adamw"] else "adamw_torch",
        max_grad_norm=spec["grad_clip"],
        beta=spec["beta"],
        loss_type=["sigmoid"],
        max_length=spec["max_length"],
        precompute_ref_log_probs=False,
        disable_dropout=True,
        gradient_checkpointing=False,
        bf16=cuda,
        fp16=False,
        use_cpu=not cuda,
        seed=0,
        report_to="none",
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    trainer = SequentialDPOTrainer(
        model=policy,
        ref_model=reference,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[StepClock()],
    )
    trainer.train()
    params = sum(p.numel() for p in policy.parameters())
    return {"params_m": params / 1e6}
