"""The benchmark's model (embedded, a folder, or a random GPT-NeoX of a given shape) and pairs (world or TL;DR)."""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
from pathlib import Path
from typing import Any

RANDOM_NEOX = re.compile(r"^random-neox:(\d+)x(\d+)x(\d+)$")


def prepare_model(name: str, max_length: int, workdir: Path, vocab: int | None = None) -> tuple[str, str]:
    """Return (folder to load, description): resolve an embedded name or folder, or build a random GPT-NeoX (of
    `vocab` tokens when given: the word vocabulary padded, so that the LM head costs what a real one does)."""
    from lit_daa.models import resolve_model

    match = RANDOM_NEOX.match(name)
    if match is None:
        if vocab is not None:
            raise SystemExit("step_benchmark: --vocab needs a --model random-neox:HIDDENxLAYERSxHEADS")
        return resolve_model(name), name
    from lit_daa.synthetic.model import TinyNeoX

    hidden, layers, heads = (int(g) for g in match.groups())
    if hidden % heads:
        raise SystemExit(f"step_benchmark: {name}: the hidden size must be a multiple of the number of heads")
    folder = workdir / f"random-neox-{hidden}x{layers}x{heads}"
    positions = max(128, max_length)
    TinyNeoX(hidden_size=hidden, num_layers=layers, num_heads=heads, max_positions=positions, vocab_size=vocab).build(
        folder
    )
    words = "" if vocab is None else f", vocabulary padded to {vocab}"
    return str(folder), f"{name} (random GPT-NeoX, synthetic word tokenizer{words})"


def world_kwargs(args: argparse.Namespace) -> dict[str, int]:
    lo, hi = args.response_range
    return {"min_length": lo, "max_length": hi, "prompt_words": args.prompt_words}


def make_rows(args: argparse.Namespace, num_pairs: int) -> tuple[list[dict[str, str]], str]:
    """The benchmark's pairs and their description.

    `--data world`: the synthetic world's pairs (short prompts). `--data tldr`: TL;DR-shaped pairs of random words
    from the world's vocabulary (one token each): prompts of `--prompt-range` words (a Reddit post), responses of
    `--response-words` (a summary), so a prompt is about 8 to 11 times a response, as in TL;DR.
    """
    if args.data == "world":
        from lit_daa.synthetic.world import SyntheticWorld

        rows = SyntheticWorld(**world_kwargs(args)).pairs(num_pairs, args.pair_seed)
        lo, hi = args.response_range
        desc = f"SyntheticWorld(min_length={lo}, max_length={hi}, prompt_words={args.prompt_words})"
        return rows, desc + f".pairs({num_pairs}, seed={args.pair_seed})"
    from lit_daa.synthetic.world import vocabulary

    words = [w for w in vocabulary() if w.isalpha()]
    rng = random.Random(args.pair_seed)
    (plo, phi), (rlo, rhi) = args.prompt_range, args.response_range

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi)))

    # the prompt ends with a space: TRL tokenizes prompt + response as one string
    rows = [
        {"prompt": text(plo, phi) + " ", "chosen": text(rlo, rhi), "rejected": text(rlo, rhi)} for _ in range(num_pairs)
    ]
    return rows, f"TL;DR-shaped random words: prompts of {plo}-{phi} words, responses of {rlo}-{rhi}, {num_pairs} pairs"


def write_rows(rows: list[dict[str, str]], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def length_report(model_path: str, rows: list[dict[str, str]], args: argparse.Namespace) -> dict[str, Any]:
    """Token lengths of the pairs, and whether either framework's truncation rule would cut anything."""
    from lit_daa.models import load_tokenizer

    tok = load_tokenizer(model_path)

    def ids(texts: list[str]) -> list[list[int]]:
        return tok(texts, add_special_tokens=False)["input_ids"]

    prompts = ids([r["prompt"] for r in rows])
    chosen = ids([r["chosen"] for r in rows])
    rejected = ids([r["rejected"] for r in rows])
    seqs = [len(p) + len(r) + 1 for p, c, rj in zip(prompts, chosen, rejected, strict=True) for r in (c, rj)]
    return {
        "max_prompt_tokens": max(len(p) for p in prompts),
        "mean_sequence_tokens": statistics.fmean(seqs),
        "max_sequence_tokens": max(seqs),
        "unk_tokens": sum(x == tok.unk_token_id for group in (prompts, chosen, rejected) for row in group for x in row),
        "truncation": max(len(p) for p in prompts) > args.max_prompt_length or max(seqs) > args.max_length,
    }
