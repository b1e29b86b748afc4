"""A torch Dataset over a manifest, and a DataLoader that keeps the model, not the reader, busy.

:class:`ImageDataset` reads each row's image (:func:`auditkit.data.readers.read_image`),
resizes it (:class:`auditkit.data.transforms.Preprocess`), optionally
augments it, and normalises it. With ``cache=True`` every image is decoded
and resized once, up front, into one contiguous tensor (one block, so forked
DataLoader workers share it copy-on-write): for data sets that fit in memory
this removes decoding from every epoch after the first.

:func:`make_loader` picks the DataLoader settings: worker processes only
where decoding is the bottleneck (a cached or tiny-image data set on a
two-core CPU runs fastest in-process, see ``benchmarks/RESULTS.md``), pinned
memory only for CUDA (it helps host-to-device copies and costs elsewhere),
persistent workers whenever there are workers.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from auditkit.data.readers import read_image
from auditkit.data.transforms import Augment, Preprocess
from auditkit.errors import InvalidInputError
from auditkit.progress import track

DEFAULT_CACHE_LIMIT_BYTES = 4 << 30
_CPU_WORKERS_FROM_CORES = 4


class ImageDataset(Dataset):
    """Images of a manifest frame as model inputs: ``dataset[i] -> (x (C, h, w), y_true, i)``.

    ``frame`` needs ``image`` (paths) and ``y_true`` (class indices), e.g.
    ``Manifest.frame`` or a split of it; ``i`` is the position in ``frame``,
    so predictions map back to rows. ``augment`` is ``False``, ``True``
    (:class:`Augment` defaults) or an :class:`Augment`. ``cache`` preloads
    every resized image (refused above ``cache_limit_bytes``).
    ``frame_index`` picks a frame of multi-frame images; a ``frame`` column
    (the manifest's) picks one per row and wins where it is filled.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        preprocess: Preprocess,
        *,
        augment: bool | Augment = False,
        cache: bool = False,
        frame_index: int | None = None,
        cache_limit_bytes: int = DEFAULT_CACHE_LIMIT_BYTES,
    ) -> None:
        for column in ("image", "y_true"):
            if column not in frame.columns:
                raise InvalidInputError(
                    f"ImageDataset needs an '{column}' column (a Manifest frame), got {list(frame.columns)}"
                )
        self.paths: list[str] = [str(p) for p in frame["image"].tolist()]
        self.targets = np.asarray(frame["y_true"].to_numpy(), dtype=np.int64)
        self.preprocess = preprocess
        self.augment: Augment | None = Augment() if augment is True else (augment or None)
        self.frame_index = frame_index
        # a manifest 'frame' column names each row's frame of a multi-frame file (empty: frame_index)
        self.frames: list[int | None] = (
            [None if pd.isna(v) else int(v) for v in frame["frame"].tolist()]
            if "frame" in frame.columns
            else [None] * len(self.paths)
        )
        self._cache: torch.Tensor | None = None
        if cache:
            self._cache = self._preload(cache_limit_bytes)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def cached(self) -> bool:
        """Return whether every image is preloaded in memory."""
        return self._cache is not None

    def _load(self, index: int) -> torch.Tensor:
        # the reader's array is fresh, so prepare may wrap it without a defensive copy
        chosen = self.frames[index]
        frame_index = self.frame_index if chosen is None else chosen
        return self.preprocess._prepare(read_image(self.paths[index], frame_index=frame_index), copy=False)

    def _preload(self, limit: int) -> torch.Tensor:
        if not self.paths:
            return torch.empty(0)
        first = self._load(0)
        need = first.numel() * first.element_size() * len(self.paths)
        if need > limit:
            raise InvalidInputError(
                f"caching {len(self.paths)} images of shape {tuple(first.shape)} needs "
                f"{need / 2**30:.1f} GiB, above the {limit / 2**30:.1f} GiB cache limit; "
                "turn the cache off (decode per epoch) or raise the limit"
            )
        block = torch.empty((len(self.paths), *first.shape), dtype=first.dtype)
        block[0] = first
        for index in track(range(1, len(self.paths)), total=len(self.paths) - 1, description="caching images"):
            image = self._load(index)
            if image.shape[0] != block.shape[1]:
                # grayscale and RGB mixed on a 3-channel model: keep three channels for all
                if image.shape[0] == 1:
                    image = image.expand(3, *image.shape[1:])
                else:
                    block = block.expand(-1, 3, -1, -1).clone()
            block[index] = image
        return block

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        """Return ``(x (C, h, w) float32 normalised, y_true, index)``."""
        image = self._cache[index] if self._cache is not None else self._load(index)
        if self.augment is not None:
            image = self.augment(image)
        return self.preprocess.finish(image), int(self.targets[index]), int(index)


def default_num_workers(dataset: Dataset, device: torch.device | str) -> int:
    """Return the DataLoader worker count for ``dataset`` on ``device`` (see module docstring).

    0 for a cached data set (nothing left to decode) and on CPUs with fewer
    than 4 cores (workers compete with the model for the same cores); on
    CUDA up to 8 workers, one core left for the training process; on a
    larger CPU a quarter of the cores.
    """
    if getattr(dataset, "cached", False):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if torch.device(device).type == "cuda":
        return max(0, min(8, cores - 1))
    if cores < _CPU_WORKERS_FROM_CORES:
        return 0
    return max(1, cores // 4)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    device: torch.device | str,
    num_workers: int | None = None,
    seed: int | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """Return a DataLoader for ``dataset`` on ``device``: batches ``(x (B, C, h, w), y (B,), index (B,))``.

    ``num_workers=None`` chooses with :func:`default_num_workers`; memory is
    pinned only for CUDA; workers persist across epochs; ``seed`` fixes the
    shuffling order (and, through torch's per-worker seeding, augmentation).
    """
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
    target = torch.device(device)
    workers = default_num_workers(dataset, target) if num_workers is None else int(num_workers)
    if workers < 0:
        raise InvalidInputError(f"num_workers must be 0 or more, got {num_workers}")
    generator = None
    if seed is not None:
        generator = torch.Generator()
        generator.manual_seed(int(seed))
    options: dict[str, Any] = {}
    if workers > 0:
        options.update(persistent_workers=True, prefetch_factor=4)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        pin_memory=target.type == "cuda",
        drop_last=drop_last,
        generator=generator,
        **options,
    )
