"""Logger variants that behave well with spawned DDP processes."""

from __future__ import annotations

import csv
import os
from typing import Any

import yaml
from pytorch_lightning.loggers import CSVLogger as _LightningCSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class _ContinuingWriter(ExperimentWriter):
    """CSV writer that continues an existing ``metrics.csv``/``hparams.yaml`` instead of deleting it.

    Lightning's writer deletes the metrics file when a new writer opens the same folder. With
    ``ddp_spawn`` every stage (fit, test) runs in fresh processes with a fresh writer, so the test stage
    would erase the training curves (or fail on the header); here the header and hparams are read back.
    """

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir=log_dir)
        hparams_file = os.path.join(self.log_dir, self.NAME_HPARAMS_FILE)  # noqa: PTH118 (fsspec URL)
        if self._fs.isfile(hparams_file):
            with self._fs.open(hparams_file, "r") as file:
                self.hparams = yaml.safe_load(file) or {}

    def _check_log_dir_exists(self) -> None:
        """Keep existing files (the parent class deletes them)."""

    def _read_header(self) -> list[str]:
        if not self._fs.isfile(self.metrics_file_path):
            return []
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            return next(csv.reader(file), [])

    def save(self) -> None:
        """Append the recorded rows; widen the file's header first if new columns appeared.

        The header is read back from the file on every save, so a writer that was pickled into a
        spawned process (with stale column names) still appends consistently.
        """
        if not self.metrics:
            return
        header = self._read_header()
        keys = sorted(set(header) | set(self.metrics_keys) | set().union(*self.metrics))
        if header and header != keys:
            self._rewrite_with_new_header(keys)
        self.metrics_keys = keys
        with self._fs.open(self.metrics_file_path, mode="a" if header else "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=keys)
            if not header:
                writer.writeheader()
            writer.writerows(self.metrics)
        self.metrics = []


class CSVLogger(_LightningCSVLogger):
    """Lightning's CSV logger whose files survive being reopened by another process."""

    @property
    def experiment(self) -> Any:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment
