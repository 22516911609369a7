"""Tiny Pythia-shaped (GPT-NeoX) models for the embedded world, built once and cached in HF format.

`lit-daa` never treats these specially after they are built: `resolve_model` returns a local folder and the
policy, the reference and the tokenizer are loaded from it with `from_pretrained`, exactly as a user's own
checkpoint would be.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from lit_daa.synthetic.tokenizer import build_word_tokenizer
from lit_daa.synthetic.world import vocabulary


def cache_root() -> Path:
    """Where embedded models are built: $LIT_DAA_CACHE, else ~/.cache/lit_daa."""
    return Path(os.environ.get("LIT_DAA_CACHE", Path.home() / ".cache" / "lit_daa"))


@dataclass(frozen=True)
class TinyNeoX:
    """A randomly initialised GPT-NeoX of the given shape over the synthetic world's vocabulary.

    `vocab_size` pads the embedding and LM head past the word vocabulary (e.g. Pythia's 50304) so that a benchmark
    pays for a real-sized vocabulary projection; `dtype` is what the weights are saved in.
    """

    hidden_size: int
    num_layers: int
    num_heads: int
    max_positions: int = 128
    seed: int = 0
    vocab_size: int | None = None
    dtype: torch.dtype = torch.float32

    def build(self, folder: Path) -> None:
        """Write model and tokenizer to `folder` (atomically: built aside, then renamed)."""
        tokenizer = build_word_tokenizer(vocabulary())
        config = GPTNeoXConfig(
            vocab_size=max(self.vocab_size or 0, len(tokenizer)),
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            intermediate_size=4 * self.hidden_size,
            max_position_embeddings=self.max_positions,
            rotary_pct=0.25,
            use_parallel_residual=True,
            tie_word_embeddings=False,
            bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(self.seed)
        model = GPTNeoXForCausalLM(config).to(self.dtype)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            os.replace(staging, folder)
        except OSError:  # another process finished first; its copy is identical
            shutil.rmtree(staging, ignore_errors=True)


# The embedded models, by the name a config uses. Add a size by adding an entry. Parameters (all share the world's
# 151-word vocabulary): tiny 119,424; mini 633,728; base 1,285,760; small 1,837,824; large 4,026,624 (33.7x tiny).
EMBEDDED_MODELS: dict[str, TinyNeoX] = {
    "embedded:neox-tiny": TinyNeoX(hidden_size=64, num_layers=2, num_heads=4),
    "embedded:neox-mini": TinyNeoX(hidden_size=128, num_layers=3, num_heads=4),
    "embedded:neox-base": TinyNeoX(hidden_size=160, num_layers=4, num_heads=4),
    "embedded:neox-small": TinyNeoX(hidden_size=192, num_layers=4, num_heads=6),
    "embedded:neox-large": TinyNeoX(hidden_size=256, num_layers=5, num_heads=8),
}


def embedded_model_path(name: str) -> Path:
    """Build (once) and return the folder of the embedded model `name`."""
    folder = cache_root() / name.replace(":", "-")
    if not (folder / "config.json").exists():
        EMBEDDED_MODELS[name].build(folder)
    return folder
