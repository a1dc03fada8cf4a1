"""Data: sources, synthetic faces, CPU datasets and the device-degrading DataModule."""

from faceprior.data.benchmarks import Benchmark
from faceprior.data.datamodule import FaceDataModule
from faceprior.data.dataset import ComponentBoxes, FaceDataset, LQOnlyDataset
from faceprior.data.io import BadImageError, read_image
from faceprior.data.sources import FolderSource, LMDBSource, open_source
from faceprior.data.synthetic import SyntheticSplits

__all__ = [
    "BadImageError",
    "Benchmark",
    "ComponentBoxes",
    "FaceDataModule",
    "FaceDataset",
    "FolderSource",
    "LMDBSource",
    "LQOnlyDataset",
    "SyntheticSplits",
    "open_source",
    "read_image",
]
