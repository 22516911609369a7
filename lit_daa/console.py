"""A quiet console: third-party tips and deprecation notices are hidden unless asked for.

`lit-daa --verbose ...` or `LIT_DAA_VERBOSE=1` shows them all. Progress bars, lit-daa's own messages and every
warning about the run itself stay.
"""

from __future__ import annotations

import logging
import os
import warnings

# (category, message regex) of notices that say nothing about the user's run
NOISE = [
    (Warning, r".*isinstance\(treespec, LeafSpec\)"),  # torch's _pytree deprecation, raised inside Lightning
    (FutureWarning, r".*is deprecated and will be removed in v6"),  # transformers' renames, called by peft
    (Warning, r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint"),  # same CLI callbacks
    (Warning, r"Found \d+ module\(s\) in eval mode"),  # the frozen reference is in eval mode on purpose
    (Warning, r"LightningCLI's args parameter"),  # main(argv) is how tests and sweeps call the CLI
]


class _Drop(logging.Filter):
    """Drop log records whose message starts with one of `prefixes`."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.prefixes)


def verbose_requested(argv: list[str]) -> tuple[bool, list[str]]:
    """(verbose?, argv without `--verbose`)."""
    flag = "--verbose" in argv
    return flag or os.environ.get("LIT_DAA_VERBOSE", "") not in ("", "0"), [a for a in argv if a != "--verbose"]


def quiet() -> None:
    """Hide the notices in NOISE and Lightning's advertising tips (in this process and its children)."""
    for category, message in NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)
    # Lightning's launcher starts the other ranks as children: they read PYTHONWARNINGS, not our filters
    os.environ["PYTHONWARNINGS"] = ",".join(
        filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore::FutureWarning", "ignore::DeprecationWarning"])
    )
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_Drop("💡 Tip"))
    # bitsandbytes looks for an optional CPU kernel package on import and says so on every run without it
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_Drop("Failed to load CPU gemm_4bit_forward"))
