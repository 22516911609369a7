"""Loading policies, references and tokenizers from a local folder, an embedded name or a hub name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from lit_daa.errors import InputError
from lit_daa.quantization import FourBit
from lit_daa.synthetic.model import EMBEDDED_MODELS, embedded_model_path

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# What marks a folder as a saved model (a full model, or peft adapters over one) and as a saved tokenizer.
MODEL_FILES = ("config.json", "adapter_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt")
# A hub id is `name` or `owner/name` (letters, digits, '-', '_', '.'); anything else can only be a local path.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def looks_like_hub_id(name: str) -> bool:
    """Whether `name` could be a Hugging Face hub id (not whether it exists there)."""
    return HUB_ID.fullmatch(name) is not None and ".." not in name and "--" not in name


def resolve_model(name_or_path: str, option: str = "model.policy", marker_files: tuple[str, ...] = MODEL_FILES) -> str:
    """Return what `from_pretrained` should load: an embedded model's built folder, a local folder or a hub id.

    A string that is not a hub id (absolute, starting with '.' or '~', with a second '/', a space, ...) must be an
    existing folder, and a local folder must hold one of `marker_files`, checked here so that an empty or wrong
    folder is named before transformers guesses at it (an empty folder ends in a tokenizer-conversion error).
    """
    if name_or_path in EMBEDDED_MODELS:
        return str(embedded_model_path(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not any((path / name).is_file() for name in marker_files):
            raise InputError(
                f"{option} '{name_or_path}' is a folder with no {' or '.join(marker_files)} in it, so no saved "
                "model: give the folder a model was saved to (e.g. RUN/hf_policy), an embedded name or a hub id"
            )
        return str(path)
    text = str(name_or_path)
    if text.startswith("embedded:"):
        raise InputError(f"{option} '{text}' is not an embedded model: give one of {', '.join(EMBEDDED_MODELS)}")
    if path.exists() or text.startswith((".", "/", "~")) or not looks_like_hub_id(text):
        raise InputError(
            f"{option} '{name_or_path}' is not an existing model folder, nor a hub id (name or owner/name): "
            "check the path"
        )
    return name_or_path


def load_causal_lm(
    name_or_path: str,
    dtype: str = "float32",
    option: str = "model.policy",
    quantization: FourBit | None = None,
    device: torch.device | None = None,
    attn_implementation: str | None = None,
    empty: bool = False,
) -> PreTrainedModel:
    """Load a causal LM with `AutoModelForCausalLM.from_pretrained`, naming the option on failure.

    Args:
        name_or_path: embedded name, local folder or hub id.
        dtype: dtype of the weights (of the layers that stay unquantized, under `quantization`).
        option: the config option named in errors.
        quantization: load the linear layers in 4 bits (QLoRA's base).
        attn_implementation: transformers' attention kernel (sdpa, flex_attention, ...); None: its default.
        device: where a quantized model is loaded (`device_map`), so that each rank quantizes onto its own GPU
            rather than all onto GPU 0; unquantized models load on the CPU and the strategy moves them.
        empty: build the same model (the adapter's base, for an adapter) on the meta device from its config alone,
            reading no weights: a rank that receives its shards from rank 0 (`lit_daa.sharded_loading`).
    """
    if dtype not in DTYPES:
        raise InputError(f"{option} dtype must be one of {sorted(DTYPES)}, got '{dtype}'")
    source = resolve_model(name_or_path, option)
    extra = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
    adapter_base = adapter_base_of(source)
    if adapter_base is not None and quantization is not None:
        raise InputError(
            f"{option} '{name_or_path}' is a LoRA adapter, which cannot be merged into a 4-bit base exactly: merge it "
            "into its base model first (peft's merge_and_unload, then save_pretrained) and give that folder"
        )
    if quantization is not None:
        if empty:
            raise ValueError("a 4-bit model is quantized from its real weights, so it cannot be built empty")
        extra["quantization_config"] = quantization.config()
        extra["device_map"] = {"": device if device is not None else torch.device("cpu")}
    try:
        if empty:
            return empty_causal_lm(adapter_base or source, DTYPES[dtype], **extra)
        model = AutoModelForCausalLM.from_pretrained(adapter_base or source, dtype=DTYPES[dtype], **extra)
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{option} '{name_or_path}' could not be loaded as a causal LM ({first})") from None
    if adapter_base is not None:
        model = merge_adapter(model, source)
    return model if quantization is None else quantization.keep_trainable_layout(model)


def empty_causal_lm(source: str, dtype: torch.dtype, **extra: object) -> PreTrainedModel:
    """The model `from_pretrained(source)` would return, built on the meta device from the config alone: the same
    classes, shapes, dtype, tied weights and eval mode, and no storage (the weights arrive later, sharded)."""
    config = AutoConfig.from_pretrained(source)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, **extra)
    return model.eval()  # as from_pretrained returns it


def adapter_base_of(source: str) -> str | None:
    """The base model of a local peft adapter folder (`adapter_config.json` without `config.json`), else None."""
    folder = Path(source)
    config = folder / "adapter_config.json"
    if not config.is_file() or (folder / "config.json").is_file():
        return None
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise InputError(f"{config} names no base_model_name_or_path, so the model the adapter belongs on is unknown")
    return base


def describe_model(name_or_path: str) -> str:
    """`name` in Markdown, saying when it is an adapter (what the model card names as base and reference)."""
    try:
        base = adapter_base_of(resolve_model(name_or_path))
    except InputError:
        base = None
    return f"`{name_or_path}`" + (f" (a LoRA adapter, merged into its base `{base}`)" if base else "")


def merge_adapter(base: PreTrainedModel, adapter: str) -> PreTrainedModel:
    """`base` with the LoRA adapter saved in `adapter` merged into its weights: a plain model, every weight trainable.

    An SFT adapter is where training starts and what the reference is (see `lit_daa.reference`): merged, the policy
    can take fresh adapters (`model.lora`, whose "adapters off" is then this model) or train in full, and a frozen
    copy loaded the same way equals it exactly. transformers' own adapter loading would instead leave every weight
    frozen, and a second LoRA of the same name would silently replace the loaded one.
    """
    from peft import PeftModel  # optional dependency: the `lora` extra

    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    return merged.requires_grad_(True)


def load_tokenizer(name_or_path: str, option: str = "model.policy") -> PreTrainedTokenizerBase:
    """Load the tokenizer saved beside a model (for an adapter saved without one, its base model's); a missing pad
    token falls back to EOS."""
    source = resolve_model(name_or_path, option, MODEL_FILES + TOKENIZER_FILES)
    if not any((Path(source) / name).is_file() for name in TOKENIZER_FILES):
        source = adapter_base_of(source) or source
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:  # ValueError: files transformers cannot build a tokenizer from
        raise InputError(f"{option} '{name_or_path}' has no loadable tokenizer ({str(err).splitlines()[0]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
