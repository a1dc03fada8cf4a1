"""Data: sources, synthetic faces, CPU datasets and the device-degrading DataModule."""

from faceprior.data.datamodule import Benchmark, FaceDataModule, SyntheticSplits
from faceprior.data.dataset import ComponentBoxes, FaceDataset, LQOnlyDataset
from faceprior.data.io import BadImageError, read_image
from faceprior.data.sources import FolderSource, LMDBSource, open_source

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
