"""The validation and test steps every preference LightningModule shares (the DAA module, the reward model): per-pair
values into torchmetrics collections, one per validation set, logged by epoch."""

from __future__ import annotations

from abc import abstractmethod

from torch import Tensor

from lit_daa.metrics import logged


class PairMetricSteps:
    """Mixin for a LightningModule with `val_metrics`, `extra_val_metrics` (name -> collection), `val_names` and
    `test_metrics`: subclasses say how a batch becomes per-pair values and which one the progress bar shows."""

    progress_metric: str  # the key of the collection shown as val/acc on the progress bar

    @abstractmethod
    def pair_metric_values(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-pair values, each of shape (B,), for the metric collections (one entry `losses` among them)."""

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        values = self.pair_metric_values(batch)
        name = self.val_names[dataloader_idx] if dataloader_idx < len(self.val_names) else ""
        metrics = self.extra_val_metrics[name] if name else self.val_metrics
        metrics.update(**values)
        b = values["losses"].shape[0]
        # only the metrics this data has values for: pairs log pair accuracy, unpaired rows their own (metrics.py)
        self.log_dict(logged(metrics), on_epoch=True, batch_size=b, add_dataloader_idx=False)
        progress = metrics[self.progress_metric]
        if not name and getattr(progress, "seen", True):
            self.log("val/acc", progress, prog_bar=True, logger=False, add_dataloader_idx=False)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        values = self.pair_metric_values(batch)
        self.test_metrics.update(**values)
        self.log_dict(logged(self.test_metrics), on_epoch=True, batch_size=values["losses"].shape[0])


__all__ = ["PairMetricSteps"]
