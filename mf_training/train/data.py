"""Samples -> training tensors: source mixing, deterministic order, random crops, per-rank shards.

Every random choice is derived from (seed, position in the sample stream), never from a
stateful generator, so the order and the crops of step k are the same whether a run is
resumed, or split over any number of ranks. A "position" is the index of a sample in the
endless stream of global batches: step k covers positions [k * B, (k + 1) * B).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import maximum_filter1d

from mf_core.flow import TrainingMix
from mf_core.frame_codec import depth_tensor, encode_lidar, encode_target, image_tensor
from mf_core.resize import resize_dense_depth, resize_image, resize_sparse_depth
from mf_core.self_validation import held_out_tiles
from mf_training.data.sample import Sample
from mf_training.train.config import DataConfig

# Seeds the LiDAR split of evaluation views (with the sample name), so every run scores the same points.
VALIDATION_SPLIT_SEED = 1234


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
    return _window(height, width, out_h / scale, out_w / scale, rng)


def _window(height: int, width: int, crop_h: float, crop_w: float, rng: np.random.Generator | None
            ) -> tuple[int, int, int, int]:
    """A (top, left, h, w) window of at most ``crop_h`` x ``crop_w`` source pixels, centred or random."""
    crop_h, crop_w = min(height, max(1, round(crop_h))), min(width, max(1, round(crop_w)))
    if rng is None:
        return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w
    return int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1)), crop_h, crop_w


@dataclass(frozen=True)
class View:
    """Where an example comes from in its frame and how it is scaled: window, output size, flip."""

    window: tuple[int, int, int, int]  # top, left, h, w in source pixels
    size: tuple[int, int]  # (h, w) the window is resized to, at most the example size
    flip: bool


def choose_view(shape: tuple[int, int], config: DataConfig, rng: np.random.Generator | None) -> View:
    """The view of a frame an example shows (see :class:`mf_training.train.config.DataConfig`).

    With ``frame_size``, the frame is scaled so its longer side is ``frame_size`` (times a random
    zoom in [1/max_zoom, max_zoom]): the scale the model runs at in inference, so that edges and
    LiDAR spacing look the same in training; a window of at most (height, width) of it is taken.
    Otherwise the window is the smallest one covering the example size, times a zoom in [1, max_zoom].
    """
    height, width = shape
    out_h, out_w = config.height, config.width
    if config.frame_size:
        zoom = 1.0 if rng is None else float(np.exp(rng.uniform(-1, 1) * np.log(config.max_zoom)))
        scale = config.frame_size * zoom / max(height, width)  # example pixels per source pixel
        window = _window(height, width, out_h / scale, out_w / scale, rng)
        size = (min(out_h, max(1, round(window[2] * scale))), min(out_w, max(1, round(window[3] * scale))))
    else:
        zoom = 1.0 if rng is None else float(rng.uniform(1.0, config.max_zoom))
        window, size = crop_box(height, width, out_h, out_w, zoom, rng), (out_h, out_w)
    flip = rng is not None and config.hflip and bool(rng.integers(0, 2))
    return View(window, size, flip)


SEGMENT_TILE = (2, 24)  # (rows, columns) held out together at the training view's scale: a piece of a scan line


LINE_THINNING = (2, 3)  # keep every 2nd or 3rd scan line: a LiDAR with 1/2 or 1/3 of the beams


def thin_scan_lines(sweep: np.ndarray, every: int, phase: int, span: int = 5) -> np.ndarray:
    """(h, w) bool: the returns of ``sweep`` (h, w metres, 0 = none) on every ``every``-th scan line.

    A projected sweep does not say which beam a return came from. Each beam crosses an image
    column about once, so a return's beam is taken as the number of scan lines below it in its
    column (counted from the bottom, where the ground gives every beam a return), and the lines
    ``phase``, ``phase + every``, ... are kept. Returns are first widened over ``span`` columns so
    that a line with a missing return in one column is still counted there, and vertically
    touching returns count as one line.
    """
    valid = sweep > 0
    line = maximum_filter1d(valid, span, axis=1)  # (h, w) bool: a scan line passes here or beside
    bottom = line & ~np.vstack([line[1:], np.zeros_like(line[:1])])  # (h, w) lowest pixel of each crossing
    rank = np.cumsum(bottom[::-1], axis=0)[::-1] - 1  # (h, w) crossings below each pixel, its own included
    return valid & (rank % every == phase)


def split_lidar(sweep: np.ndarray, gt: np.ndarray | None, config: DataConfig, mix: TrainingMix,
                rng: np.random.Generator, conditioned: bool) -> tuple[np.ndarray, np.ndarray]:
    """(fed LiDAR, supervision target), (h, w) metres each, 0 = none; no target pixel is fed.

    Conditioned models are fed ``mix.sparse_input_fraction`` of the sweep's points, as single points
    or (``mix.segment_holdout_prob``) as whole scan-line segments held out, from the sweep thinned to
    fewer scan lines for a ``mix.line_drop_prob`` share (:func:`thin_scan_lines`; none for a
    ``mix.sparse_drop_prob`` share of examples: monocular samples); the target is the dense ground
    truth where the source has it and ``config.use_gt_as_supervision`` (with ``config.dense_target_prob``),
    else the held-out sweep points. Other models get no input, and the whole sweep (or GT) as target.
    """
    use_gt = gt is not None and (config.use_gt_as_supervision or not (sweep > 0).any())
    if not conditioned:
        return np.zeros_like(sweep), gt if use_gt else sweep
    if rng.random() < mix.sparse_drop_prob:
        return np.zeros_like(sweep), gt if use_gt else sweep
    keep = (~held_out_tiles(sweep.shape, SEGMENT_TILE, 1 - mix.sparse_input_fraction, rng)
            if rng.random() < mix.segment_holdout_prob else rng.random(sweep.shape) < mix.sparse_input_fraction)
    if mix.line_drop_prob and rng.random() < mix.line_drop_prob:  # no draw when off: old runs unchanged
        every = int(rng.choice(LINE_THINNING))
        keep &= thin_scan_lines(sweep, every, int(rng.integers(every)))
    fed = np.where(keep, sweep, 0.0).astype(np.float32)
    if use_gt and rng.random() < config.dense_target_prob:
        return fed, np.where(fed > 0, 0.0, gt).astype(np.float32)
    return fed, np.where(fed > 0, 0.0, sweep).astype(np.float32)


def make_example(sample: Sample, config: DataConfig, rng: np.random.Generator | None,
                 mix: TrainingMix | None = None, conditioned: bool = False) -> dict[str, torch.Tensor]:
    """One sample as the model trains on it: image, fed LiDAR and encoded supervision depth.

    ``rng`` None gives the deterministic evaluation view (centred, no flip, the split drawn from
    the sample name). The LiDAR split is :func:`split_lidar`; the fed points and the target go
    through :mod:`mf_core.frame_codec`, as at inference. Returned tensors (no batch dim):
    ``image`` (3, h, w) in [-1, 1], ``depth`` (1, h, w) encoded target, ``depth_valid`` (1, h, w)
    bool, ``sparse_depth`` (1, h, w) fed LiDAR encoded, ``sparse_mask`` (1, h, w) bool,
    ``depth_scale`` () metres per unit (0 when the view has no target), and the metric views
    ``metric_target`` / ``metric_lidar`` (the fed points) / ``metric_gt`` (1, h, w). Views smaller
    than (height, width) (``frame_size`` with small frames) are zero-padded: no image, no depth.
    """
    view = choose_view(sample.image.shape[:2], config, rng)
    top, left, h, w = view.window
    out_h, out_w = view.size

    def crop(array: np.ndarray, resize) -> np.ndarray:
        resized = resize(array[top:top + h, left:left + w], out_w, out_h)
        return resized[:, ::-1] if view.flip else resized

    image = crop(sample.image, resize_image)  # (h, w, 3) uint8
    sweep = crop(sample.sparse_depth, resize_sparse_depth)  # (h, w) metres, 0 = none
    gt = None if sample.gt_depth is None else crop(sample.gt_depth, resize_dense_depth)
    split_rng = rng or np.random.default_rng([VALIDATION_SPLIT_SEED, zlib.crc32(sample.name.encode())])
    fed, target = split_lidar(sweep, gt, config, mix or TrainingMix(), split_rng, conditioned)

    lidar = encode_lidar(depth_tensor(fed))  # scale = mean of the fed points
    target_t = depth_tensor(target)  # (1, 1, h, w)
    valid = target_t > 0
    if valid.any():
        encoded, scale = encode_target(target_t, valid, lidar.scale if lidar.mask.any() else None)
    else:
        encoded, scale = torch.zeros_like(target_t), torch.zeros(1)
    pad = (0, config.width - out_w, 0, config.height - out_h)  # right and bottom
    example = {
        "image": image_tensor(image),  # (3, h, w) in [-1, 1]
        "depth": encoded[0],  # (1, h, w)
        "depth_valid": valid[0],  # (1, h, w)
        "sparse_depth": lidar.depth[0],  # (1, h, w)
        "sparse_mask": lidar.mask[0],  # (1, h, w)
        "metric_target": target_t[0],  # (1, h, w)
        "metric_lidar": depth_tensor(fed)[0],  # (1, h, w)
        "metric_gt": (target_t if gt is None else depth_tensor(gt))[0],  # (1, h, w)
    }
    example = {k: F.pad(v, pad) if v.dtype != torch.bool else F.pad(v, pad, value=False) for k, v in example.items()}
    example["depth_scale"] = scale[0]  # ()
    return example


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


def load_batch(mixer: SampleMixer, positions: np.ndarray, config: DataConfig, seed: int,
               mix: TrainingMix | None = None, conditioned: bool = False) -> dict[str, torch.Tensor]:
    """The training batch at ``positions`` of the sample stream (random views, flips and LiDAR splits)."""
    indices = mixer.indices(int(positions[0]), len(positions))
    return collate([make_example(mixer.pool[i], config, example_rng(seed, int(p)), mix, conditioned)
                    for i, p in zip(indices, positions, strict=True)])
