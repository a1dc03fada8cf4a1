"""The CSV logger keeps earlier rows when another process (or writer) reopens the run folder."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

from faceprior.utils.loggers import CSVLogger


def test_csv_logger_continues_existing_file(tmp_path: Path) -> None:
    first = CSVLogger(save_dir=str(tmp_path), name="csv", version=0)
    first.log_hyperparams({"lr": 0.1})
    stale = pickle.loads(pickle.dumps(first))  # what a spawned process receives
    first.log_metrics({"train/loss": 1.0}, step=0)
    first.log_metrics({"train/loss": 0.5, "val/psnr": 20.0}, step=1)
    first.save()

    stale.log_metrics({"test/psnr": 21.0}, step=2)
    stale.save()
    again = CSVLogger(save_dir=str(tmp_path), name="csv", version=0)  # a brand-new writer
    again.log_metrics({"train/loss": 0.25}, step=3)
    again.save()

    path = Path(first.log_dir) / "metrics.csv"
    rows = list(csv.DictReader(path.open()))
    assert [r["step"] for r in rows] == ["0", "1", "2", "3"]
    assert rows[1]["val/psnr"] == "20.0" and rows[2]["test/psnr"] == "21.0"
    assert rows[3]["train/loss"] == "0.25"
    assert "lr" in (Path(first.log_dir) / "hparams.yaml").read_text()
