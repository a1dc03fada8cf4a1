"""Reading the inputs of ``faceprior-compare``: eval results files and training ``results.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class CompareError(ValueError):
    """An input that cannot be compared; the message names it and says what was expected."""


@dataclass
class BenchmarkEntry:
    """One method's results on one benchmark, as read from a results file."""

    benchmark: str
    means: dict[str, float]
    source: Path
    run_dir: Path
    protocol: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

    @property
    def weights_name(self) -> str | None:
        name = (self.protocol.get("weights") or {}).get("name")
        return str(name) if name else None

    def restored(self, name: str) -> Path | None:
        path = self.run_dir / "restored" / self.benchmark / f"{name}.png"
        return path if path.is_file() else None

    def restored_names(self) -> set[str]:
        folder = self.run_dir / "restored" / self.benchmark
        return {p.stem for p in folder.glob("*.png")} if folder.is_dir() else set()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CompareError(f"{path}: cannot read it as JSON ({err})") from err


def _entries_from_json(path: Path, data: Any) -> list[BenchmarkEntry]:
    if isinstance(data, dict) and isinstance(data.get("means"), dict) and "benchmark" in data:
        run_dir = path.parent.parent if path.parent.name == "results" else path.parent
        rows = data.get("per_image") or []
        names = [str(r["name"]) for r in rows if isinstance(r, dict) and "name" in r]
        means = {k: float(v) for k, v in data["means"].items() if isinstance(v, int | float)}
        return [
            BenchmarkEntry(
                str(data["benchmark"]),
                means,
                path,
                run_dir,
                dict(data.get("protocol") or {}),
                names,
            )
        ]
    if isinstance(data, dict) and isinstance(data.get("metrics"), dict):
        grouped: dict[str, dict[str, float]] = {}
        for key, value in data["metrics"].items():
            parts = str(key).split("/")
            if len(parts) == 3 and parts[0] == "test" and isinstance(value, int | float):
                grouped.setdefault(parts[1], {})[parts[2]] = float(value)
        if grouped:
            return [BenchmarkEntry(b, m, path, path.parent) for b, m in grouped.items()]
    raise CompareError(
        f"{path}: not a results file: expected a faceprior-eval results/<benchmark>.json "
        "('benchmark' and 'means') or a training results.json ('metrics' with "
        "test/<benchmark>/<metric> keys)"
    )


def load_results(path: str | Path) -> list[BenchmarkEntry]:
    """The per-benchmark entries of a run folder or of one results JSON file."""
    path = Path(path)
    if path.is_dir():
        files = sorted((path / "results").glob("*.json"))
        if files:
            return [e for f in files for e in _entries_from_json(f, _read_json(f))]
        if (path / "results.json").is_file():
            return _entries_from_json(path / "results.json", _read_json(path / "results.json"))
        raise CompareError(
            f"{path}: a folder without results: expected a run folder with results/<benchmark>.json "
            "(faceprior-eval) or results.json (training run), or one of those files"
        )
    if path.is_file():
        return _entries_from_json(path, _read_json(path))
    raise CompareError(
        f"{path}: no such file or folder (expected a run folder or a results JSON file)"
    )
