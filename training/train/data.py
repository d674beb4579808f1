"""Samples -> training tensors: source mixing, deterministic order, random crops, per-rank shards.

Every random choice is derived from (seed, position in the sample stream), never from a
stateful generator, so the order and the crops of step k are the same whether a run is
resumed, or split over any number of ranks. A "position" is the index of a sample in the
endless stream of global batches: step k covers positions [k * B, (k + 1) * B).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mf_core.depth_codec import encode_depth
from mf_core.resize import resize_dense_depth, resize_image, resize_sparse_depth
from training.data.sample import Sample
from training.train.config import DataConfig


@dataclass
class SampleMixer:
    """The training pool and which sample sits at each stream position.

    Each epoch holds every source's share of ``len(pool)`` draws (by weight), sources with
    a larger share than their size cycle through their samples, and the epoch is shuffled
    with a generator seeded by (seed, epoch).
    """

    pool: list[Sample]
    source_of: np.ndarray  # (N,) source index of each pool entry
    weights: list[float]  # one per source
    seed: int

    def __post_init__(self) -> None:
        counts = np.bincount(self.source_of, minlength=len(self.weights))
        share = np.asarray(self.weights) / sum(self.weights)
        # Largest-remainder rounding keeps the epoch length equal to the pool size.
        quota = share * len(self.pool)
        draws = np.floor(quota).astype(np.int64)
        draws[np.argsort(draws - quota)[: len(self.pool) - draws.sum()]] += 1
        self._draws = np.where(counts > 0, draws, 0)
        self._members = [np.flatnonzero(self.source_of == s) for s in range(len(self.weights))]
        self._epoch_cache: tuple[int, np.ndarray] | None = None

    @property
    def epoch_length(self) -> int:
        return int(self._draws.sum())

    def epoch_order(self, epoch: int) -> np.ndarray:
        """(epoch_length,) pool indices of one epoch, deterministic in (seed, epoch)."""
        if self._epoch_cache is not None and self._epoch_cache[0] == epoch:
            return self._epoch_cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        parts = []
        for members, n in zip(self._members, self._draws, strict=True):
            if n == 0:
                continue
            cycles = [rng.permutation(members) for _ in range(math.ceil(n / len(members)))]
            parts.append(np.concatenate(cycles)[:n])
        order = rng.permutation(np.concatenate(parts))
        self._epoch_cache = (epoch, order)
        return order

    def indices(self, start: int, count: int) -> np.ndarray:
        """Pool indices at stream positions [start, start + count)."""
        positions = np.arange(start, start + count)
        out = np.empty(count, dtype=np.int64)
        epochs = positions // self.epoch_length
        for epoch in np.unique(epochs):
            here = epochs == epoch
            out[here] = self.epoch_order(int(epoch))[positions[here] % self.epoch_length]
        return out


def crop_box(height: int, width: int, out_h: int, out_w: int, zoom: float, rng: np.random.Generator | None
             ) -> tuple[int, int, int, int]:
    """Source window (top, left, h, w) with the output's aspect, ``zoom`` x the smallest covering scale.

    ``rng`` None -> centred (evaluation); otherwise a uniformly random offset.
    """
    scale = max(out_h / height, out_w / width) * zoom  # output pixels per source pixel
    crop_h = min(height, max(1, round(out_h / scale)))
    crop_w = min(width, max(1, round(out_w / scale)))
    if rng is None:
        return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w
    return int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1)), crop_h, crop_w


def _to_depth_tensor(depth: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None, None]  # (1, 1, H, W)


def make_example(sample: Sample, config: DataConfig, rng: np.random.Generator | None) -> dict[str, torch.Tensor]:
    """One sample at the training resolution: image in [-1, 1] and encoded depth target.

    ``rng`` None gives the deterministic evaluation view (centre crop, no flip). The depth
    target is the LiDAR depth, or dense GT with ``config.use_gt_as_supervision`` (or when
    the sample has no LiDAR return at all). Returned tensors (no batch dim): ``image``
    (3, h, w), ``depth`` (1, h, w) encoded, ``depth_valid`` (1, h, w) bool, ``sparse_depth``
    (1, h, w) LiDAR encoded with the target's scale, ``sparse_mask`` (1, h, w) bool,
    ``depth_scale`` () metres per unit (0 when the view has no valid depth), and the
    metric views ``metric_target``/``metric_lidar``/``metric_gt`` (1, h, w) for evaluation.
    """
    out_h, out_w = config.height, config.width
    zoom = 1.0 if rng is None else float(rng.uniform(1.0, config.max_zoom))
    top, left, h, w = crop_box(*sample.image.shape[:2], out_h, out_w, zoom, rng)
    window = (slice(top, top + h), slice(left, left + w))
    flip = rng is not None and config.hflip and bool(rng.integers(0, 2))

    def view(array: np.ndarray, resize) -> np.ndarray:
        resized = resize(array[window], out_w, out_h)
        return resized[:, ::-1] if flip else resized

    image = view(sample.image, resize_image)  # (h, w, 3) uint8
    lidar = view(sample.sparse_depth, resize_sparse_depth)  # (h, w) metres, 0 = none
    gt = None if sample.gt_depth is None else view(sample.gt_depth, resize_dense_depth)  # (h, w)
    use_gt = gt is not None and (config.use_gt_as_supervision or not (lidar > 0).any())
    target = gt if use_gt else lidar

    target_t = _to_depth_tensor(target)  # (1, 1, h, w)
    lidar_t = _to_depth_tensor(lidar)  # (1, 1, h, w)
    valid = target_t > 0  # (1, 1, h, w)
    lidar_valid = lidar_t > 0  # (1, 1, h, w)
    if valid.any():
        encoded, scale = encode_depth(target_t, valid)  # (1, 1, h, w), (1,)
        lidar_encoded, _ = encode_depth(lidar_t, lidar_valid, scale=scale) if lidar_valid.any() else (
            torch.zeros_like(lidar_t), scale)
    else:
        encoded, lidar_encoded, scale = torch.zeros_like(target_t), torch.zeros_like(lidar_t), torch.zeros(1)
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()  # (3, h, w)
    return {
        "image": pixels / 127.5 - 1.0,  # (3, h, w) in [-1, 1]
        "depth": encoded[0],  # (1, h, w)
        "depth_valid": valid[0],  # (1, h, w)
        "sparse_depth": lidar_encoded[0],  # (1, h, w)
        "sparse_mask": lidar_valid[0],  # (1, h, w)
        "depth_scale": scale[0],  # ()
        "metric_target": target_t[0],  # (1, h, w)
        "metric_lidar": lidar_t[0],  # (1, h, w)
        "metric_gt": (target_t if gt is None else _to_depth_tensor(gt))[0],  # (1, h, w)
    }


def collate(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack per-example tensors into a batch (new leading dim B)."""
    return {key: torch.stack([e[key] for e in examples]) for key in examples[0]}


def example_rng(seed: int, position: int) -> np.random.Generator:
    """The augmentation generator of one stream position (independent of rank and resume)."""
    return np.random.default_rng([seed, 1, position])


@dataclass(frozen=True)
class Shard:
    """Which stream positions of a global batch one rank processes, split into micro-batches."""

    rank: int
    world_size: int
    micro_batch: int
    accumulation: int

    def micro_positions(self, step: int) -> list[np.ndarray]:
        """Per micro-batch, the stream positions this rank handles at ``step``.

        The global batch is cut into world_size * accumulation consecutive micro-batches;
        rank r takes micro-batches r * accumulation ... (r + 1) * accumulation - 1. The
        global micro-batch index (``first_micro + i``) seeds that micro-batch's noise.
        """
        global_batch = self.world_size * self.accumulation * self.micro_batch
        start = step * global_batch + self.first_micro * self.micro_batch
        return [start + np.arange(i * self.micro_batch, (i + 1) * self.micro_batch)
                for i in range(self.accumulation)]

    @property
    def first_micro(self) -> int:
        return self.rank * self.accumulation


def load_batch(mixer: SampleMixer, positions: np.ndarray, config: DataConfig, seed: int
               ) -> dict[str, torch.Tensor]:
    """The training batch at ``positions`` of the sample stream (random crops and flips)."""
    indices = mixer.indices(int(positions[0]), len(positions))
    return collate([make_example(mixer.pool[i], config, example_rng(seed, int(p)))
                    for i, p in zip(indices, positions, strict=True)])
