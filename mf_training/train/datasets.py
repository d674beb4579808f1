"""Configured data sources -> in-memory training pool and held-out validation samples.

Sources are read once into memory (``max_samples`` bounds each one): the training sets
this project targets (synthetic bags, sample folders, the shared DGP / 7-Scenes subsets)
fit comfortably, and random access is what makes the data order derivable from a step.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mf_core.errors import InputError
from mf_core.files import remove_tree, temp_dir_beside
from mf_training.data.real_sets import REAL_SETS, real_set_of, split_samples
from mf_training.data.sample import Sample
from mf_training.data.sources import open_samples
from mf_training.train.config import DataConfig, SourceConfig
from mf_training.train.data import SampleMixer
from mf_training.train.distributed import DistInfo, barrier


@dataclass
class TrainingData:
    """The training pool with its mixing order, and the held-out validation samples."""

    mixer: SampleMixer
    validation: list[Sample]
    validation_sources: list[str]  # the data.sources path of each validation sample


def sim_bag_path(source: SourceConfig, cache_dir: str | Path) -> Path:
    """Where a ``sim:`` source's bag lives in the cache (one folder per set of generator options)."""
    name = f"{source.sim_scene}_{source.frames}f_{source.width}x{source.height}_seed{source.seed}"
    return Path(cache_dir).expanduser() / name


def generate_sim_bag(source: SourceConfig, cache_dir: str | Path) -> Path:
    """Run ``mf sim`` for a ``sim:`` source unless its bag is already cached; returns the bag path."""
    from mf_training.cli import main as mf_main  # the real `mf sim` command, imported lazily (Open3D)

    out = sim_bag_path(source, cache_dir)
    if out.exists():
        return out
    work = temp_dir_beside(out)  # exclusively ours: a failed or concurrent run never deletes another's files
    try:
        code = mf_main(["sim", "--out", str(work / "bag"), "--frames", str(source.frames), "--seed",
                        str(source.seed), "--scene", source.sim_scene, "--width", str(source.width),
                        "--height", str(source.height)])
        if code != 0:
            raise InputError(f"mf sim failed for data source {source.path} (exit {code}); see the message above")
        (work / "bag").rename(out)
    finally:
        remove_tree(work, inside=out.parent)
    return out


def read_source(source: SourceConfig, cache_dir: str | Path) -> list[Sample]:
    """All samples of one source (``max_samples`` at most; only its ``split`` for a real set), in order."""
    path = sim_bag_path(source, cache_dir) if source.is_sim else Path(source.path).expanduser()
    if not path.exists():
        raise InputError(f"data source {source.path}: {path} does not exist; fix data.sources")
    limit = source.max_samples or None
    if source.split:
        real_set = real_set_of(path)
        if real_set is None:
            raise InputError(f"data source {source.path}: split: {source.split} applies to the real sets of "
                             f"shared/data only ({', '.join(REAL_SETS)}); drop it for other data")
        samples = list(itertools.islice(split_samples(iter(open_samples(path)), real_set, source.split), limit))
        if not samples:
            raise InputError(f"data source {source.path} has no frames in split {source.split}")
        return samples
    options = ({"fixed_frame": source.fixed_frame, "point_time": source.point_time} if source.fixed_frame else {}) | (
        {"camera_info_file": source.camera_info_file} if source.camera_info_file else {})  # a bag's own options
    samples = list(open_samples(path, limit=limit, **options))
    if len(samples) <= source.val_count:
        raise InputError(f"data source {source.path} has {len(samples)} samples, not enough to hold out "
                         f"val_count={source.val_count} and still train; lower val_count")
    return samples


def load_training_data(config: DataConfig, seed: int, info: DistInfo) -> TrainingData:
    """Generate missing sim bags (rank 0), then read every source on every rank and split off validation."""
    if info.is_main:
        for source in config.sources:
            if source.is_sim:
                generate_sim_bag(source, config.cache_dir)
    barrier(info)
    pool: list[Sample] = []
    source_of: list[int] = []
    validation: list[Sample] = []
    validation_sources: list[str] = []
    for index, source in enumerate(config.sources):
        samples = read_source(source, config.cache_dir)
        cut = 0 if source.split == "val" else len(samples) - source.val_count
        pool += samples[:cut]
        validation += samples[cut:]
        validation_sources += [source.path] * (len(samples) - cut)
        source_of += [index] * cut
    mixer = SampleMixer(pool, np.asarray(source_of), [s.weight for s in config.sources], seed)
    return TrainingData(mixer, validation, validation_sources)
