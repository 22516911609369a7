"""`lit-daa precompute-reference --config RUN.yaml`: fill the reference cache for a fit config without training.

Takes the same arguments as `lit-daa fit` (the run's config), builds its data and computes every pair's reference
log-probs into the cache (`lit_daa.reference_cache`), so that every later run with the same reference, data and
precision (`--model.cached_reference true`) starts without loading a reference model. A second call finds them.
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

from lit_daa.cli import DAACLI, trainer_defaults
from lit_daa.data.datamodule import PreferenceDataModule
from lit_daa.module import DAAModule
from lit_daa.reference_cache import describe, fill_reference_cache


def main(argv: list[str]) -> int:
    cli: LightningCLI = DAACLI(
        DAAModule,
        PreferenceDataModule,
        args=[*argv, "--model.cached_reference=true"],
        run=False,
        trainer_defaults=trainer_defaults(),
        auto_configure_optimizers=False,
        parser_kwargs={"prog": "lit-daa precompute-reference"},
    )
    model, data = cli.model, cli.datamodule
    data.prepare_data()
    data.setup("fit")
    device = cli.trainer.strategy.root_device  # the device the fit would use (--trainer.accelerator)
    results = fill_reference_cache(
        data, model.reference_name or model.policy_name, model.reference_dtype, device, model._load_reference
    )
    print(describe(results) or "every split carries its own reference log-prob columns: nothing to compute")
    return 0
