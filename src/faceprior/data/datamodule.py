"""LightningDataModule: CPU workers decode/flip/crop uint8 faces; the device degrades them in batches."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from faceprior.data.benchmarks import Benchmark
from faceprior.data.dataset import (
    ComponentBoxes,
    FaceDataset,
    LQOnlyDataset,
    validate_data_options,
)
from faceprior.data.sampler import EvalSampler, SeededSampler
from faceprior.data.screening import screen_source
from faceprior.data.sources import FolderSource, LMDBSource, open_source
from faceprior.data.synthetic import SyntheticSplits
from faceprior.degradation import Degradation, eval_seeds
from faceprior.utils.distributed import destroy_process_group_at_exit

log = logging.getLogger(__name__)


class FaceDataModule(pl.LightningDataModule):
    """Ground-truth faces from a folder or LMDB, degraded on the device in ``on_after_batch_transfer``.

    Batches reaching the LightningModule are dicts with ``lq`` and ``gt`` (float RGB in [0, 1]),
    ``params`` (the drawn degradation parameters, ``(B,)`` tensors), ``index``, ``skipped``,
    ``benchmark`` (evaluation only) and ``boxes`` when a component file is configured.

    ``batch_size`` is the *global* batch; each device gets ``batch_size // world_size``. Training
    degradation seeds come from a generator seeded with ``seed`` and the rank, saved in checkpoints;
    validation and benchmark degradation is a fixed function of the image index.
    """

    def __init__(
        self,
        train_root: str,
        size: int,
        batch_size: int,
        degradation: Degradation | None = None,
        *,
        val_root: str | None = None,
        train_components: str | None = None,
        benchmarks: Mapping[str, Benchmark] | None = None,
        synthetic: SyntheticSplits | Mapping[str, Any] | None = None,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        flip_prob: float = 0.5,
        crop_size: int | None = None,
        eye_enlarge_ratio: float = 1.4,
        channels_last: bool = False,
        strict: bool = False,
        verify: bool = True,
        seed: int = 0,
        val_seed: int = 1234,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        validate_data_options(  # before any data is generated (prepare_data) or read
            size=size,
            crop_size=crop_size,
            flip_prob=flip_prob,
            eye_enlarge_ratio=eye_enlarge_ratio,
            num_workers=num_workers,
            val_batch_size=val_batch_size,
            prefetch_factor=prefetch_factor,
        )
        self.train_root = train_root
        self.val_root = val_root
        self.train_components = train_components
        self.size = int(size)
        self.batch_size = int(batch_size)
        self.val_batch_size = val_batch_size
        self.degradation = degradation if degradation is not None else Degradation({})
        self.benchmarks = dict(benchmarks or {})
        for key, bench in self.benchmarks.items():
            if bench.name != key:
                raise ValueError(f"benchmarks.{key} has name '{bench.name}'; they must match")
        if isinstance(synthetic, Mapping) and synthetic.get("root") is None:
            # e.g. experiment=quickstart data=folder: the experiment's counts, but no synthetic data
            log.info(
                "data.synthetic has no root (the data is not synthetic): its settings are unused"
            )
            synthetic = None
        if isinstance(synthetic, Mapping):
            synthetic = SyntheticSplits(**synthetic)
        self.synthetic = synthetic
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.prefetch_factor = prefetch_factor if num_workers > 0 else None
        self.flip_prob = flip_prob
        self.crop_size = crop_size
        self.eye_enlarge_ratio = eye_enlarge_ratio
        self.channels_last = channels_last
        self.strict = strict
        self.verify = verify
        self.seed = int(seed)
        self.val_seed = int(val_seed)
        self.batch_size_per_device = self.batch_size
        self.skipped_at_setup = 0
        self.skipped_in_batches = 0
        self.last_degradation_seconds = 0.0
        self.data_train: Dataset[dict[str, object]] | None = None
        self.data_val: Dataset[dict[str, object]] | None = None
        self.data_test: list[Dataset[dict[str, object]]] = []
        self._generator: torch.Generator | None = None
        self._pending_state: Tensor | None = None
        # training position, for resuming mid-epoch: (epoch, batches consumed in it)
        self._epoch = 0
        self._consumed = 0
        self._resume_skip: tuple[int, int] | None = None

    # -- preparation -----------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Generate the synthetic dataset when configured and absent (rank 0 only)."""
        if self.synthetic is not None:
            self.synthetic.prepare()

    def _world_size(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return trainer.world_size, trainer.global_rank

    def setup(self, stage: str | None = None) -> None:
        destroy_process_group_at_exit()  # this worker's DDP group, before Python shuts down
        world, rank = self._world_size()
        if self.batch_size % world:
            raise ValueError(
                f"data.batch_size={self.batch_size} is the global batch and must be divisible by the "
                f"number of devices ({world})"
            )
        self.batch_size_per_device = self.batch_size // world
        self._ensure_generator(rank)
        if stage in (None, "fit") and self.data_train is None:
            source = self._screened(self.train_root)
            components = (
                ComponentBoxes(self.train_components, self.eye_enlarge_ratio)
                if self.train_components
                else None
            )
            self.data_train = FaceDataset(
                source,
                self.size,
                flip_prob=self.flip_prob,
                crop_size=self.crop_size,
                components=components,
                strict=self.strict,
            )
        if stage in (None, "fit", "validate") and self.data_val is None and self.val_root:
            self.data_val = FaceDataset(
                self._screened(self.val_root), self.size, strict=self.strict
            )
        if stage in (None, "test") and not self.data_test:
            self.data_test = [self._benchmark_dataset(b) for b in self.benchmarks.values()]

    def _screened(self, root: str) -> FolderSource | LMDBSource:
        source = open_source(root)
        self.skipped_at_setup += screen_source(source, verify=self.verify, strict=self.strict)
        return source

    def _benchmark_dataset(self, bench: Benchmark) -> Dataset[dict[str, object]]:
        """A benchmark's images, every folder screened (GT, and the LQ inputs of real sets).

        A paired benchmark loses the pairs whose LQ file is unusable (warned and counted), so an
        evaluation never scores one image in another's place or dies in a worker.
        """
        bench.check()  # a missing folder names the command that makes it
        if bench.kind == "lq_only":
            assert bench.lq_root is not None
            return LQOnlyDataset(self._screened(bench.lq_root), self.size, strict=self.strict)
        assert bench.gt_root is not None
        source = self._screened(bench.gt_root)
        lq = None
        if bench.kind == "paired":
            assert bench.lq_root is not None
            lq = self._screened(bench.lq_root)
            unusable = set(lq.dropped)
            orphans = [i for i in range(len(source)) if source.name(i) in unusable]
            if orphans:
                log.warning(
                    "%s: %d pair(s) left out because their LQ file in %s is unusable",
                    bench.name, len(orphans), bench.lq_root,
                )  # fmt: skip
                source.drop(orphans)
                if len(source) == 0:
                    raise FileNotFoundError(f"no usable pairs left in benchmark '{bench.name}'")
        return FaceDataset(source, self.size, lq_source=lq, strict=self.strict)

    # -- loaders ---------------------------------------------------------------------------------
    def _loader(
        self, dataset: Dataset[dict[str, object]], batch_size: int, shuffle: bool
    ) -> DataLoader[Any]:
        # evaluation: every image once across the ranks (no padding repeats), in order
        world, rank = self._world_size()
        sampler = None if shuffle else EvalSampler(dataset, num_replicas=world, rank=rank)  # type: ignore[arg-type]
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            drop_last=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            prefetch_factor=self.prefetch_factor,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        if self.data_train is None:
            raise RuntimeError("call setup('fit') before train_dataloader()")
        world, rank = self._world_size()
        sampler = SeededSampler(
            self.data_train,  # type: ignore[arg-type]
            self.seed,
            num_replicas=world,
            rank=rank,
        )
        if self._resume_skip is not None:
            epoch, batches = self._resume_skip
            sampler.set_epoch(epoch)
            sampler.skip_next(batches * self.batch_size_per_device)
            self._resume_skip = None
        return DataLoader(
            self.data_train,
            batch_size=self.batch_size_per_device,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            prefetch_factor=self.prefetch_factor,
        )

    def val_dataloader(self) -> DataLoader[Any] | list[DataLoader[Any]]:
        if self.data_val is None:
            return []
        return self._loader(self.data_val, self.val_batch_size or self.batch_size_per_device, False)

    def test_dataloader(self) -> list[DataLoader[Any]]:
        size = self.val_batch_size or self.batch_size_per_device
        return [self._loader(d, size, shuffle=False) for d in self.data_test]

    # -- device-side degradation -----------------------------------------------------------------
    def eval_seeds(self, indices: Tensor, base: int) -> list[int]:
        """Deterministic per-image seeds for evaluation sets (:func:`faceprior.degradation.eval_seeds`)."""
        return eval_seeds(base, indices)

    def train_seeds(self, count: int) -> list[int]:
        """Seeds for a training batch, from the checkpointed generator."""
        generator = self._ensure_generator(self._world_size()[1])
        return torch.randint(0, 2**62, (count,), generator=generator).tolist()

    def _ensure_generator(self, rank: int) -> torch.Generator:
        """The training-seed generator: seeded by ``seed`` and the rank, or restored from a checkpoint."""
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed + 7919 * rank)
            if self._pending_state is not None:
                self._generator.set_state(self._pending_state)
        return self._generator

    def degrade_batch(self, batch: dict[str, Any], seeds: list[int] | None) -> dict[str, Any]:
        """Turn a uint8 batch into ``{lq, gt, params, ...}`` floats on the batch's device."""
        start = time.perf_counter()
        out = {k: v for k, v in batch.items() if k not in ("gt", "lq")}
        if "lq" in batch:  # paired or real LQ input: nothing to synthesise
            out["lq"] = batch["lq"].float() / 255.0
            if "gt" in batch:
                out["gt"] = batch["gt"].float() / 255.0
            out["params"] = {}
        else:
            gt = batch["gt"].float() / 255.0
            if seeds is None:
                raise ValueError("seeds are required to degrade a ground-truth batch")
            lq, gt, params = self.degradation(gt, seeds)
            out.update(lq=lq, gt=gt, params=params)
        if self.channels_last:
            for key in ("lq", "gt"):
                if key in out:
                    out[key] = out[key].contiguous(memory_format=torch.channels_last)
        skipped = batch.get("skipped")
        if isinstance(skipped, Tensor):
            self.skipped_in_batches += int(skipped.sum())
        self.last_degradation_seconds = time.perf_counter() - start
        return out

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        trainer = self.trainer
        if trainer is not None and trainer.training:
            if trainer.current_epoch != self._epoch:
                self._epoch, self._consumed = trainer.current_epoch, 0
            self._consumed += 1
            return self.degrade_batch(batch, self.train_seeds(len(batch["index"])))
        if trainer is not None and trainer.testing:
            bench = list(self.benchmarks.values())[dataloader_idx]
            out = self.degrade_batch(batch, self.eval_seeds(batch["index"], bench.seed))
            out["benchmark"] = bench.name
            return out
        out = self.degrade_batch(batch, self.eval_seeds(batch["index"], self.val_seed))
        out["benchmark"] = "val"
        return out

    # -- checkpointing ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "skipped_in_batches": self.skipped_in_batches,
            "epoch": self._epoch,
            "consumed_batches": self._consumed,
        }
        if self._generator is not None:
            state["generator"] = self._generator.get_state()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped_in_batches = int(state_dict.get("skipped_in_batches", 0))
        if "consumed_batches" in state_dict:
            self._epoch = int(state_dict["epoch"])
            self._consumed = int(state_dict["consumed_batches"])
            self._resume_skip = (self._epoch, self._consumed)
        gen_state = state_dict.get("generator")
        if gen_state is not None:
            if self._generator is None:
                self._pending_state = gen_state
            else:
                self._generator.set_state(gen_state)
