"""mf train: config composition, data order, checkpoints + exact resume, DDP equivalence, learning."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle  # only to plant a pickle where safetensors belong; it is never loaded
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mf_core.checkpoint import load_model
from mf_core.errors import InputError
from mf_core.flow import TrainingMix
from mf_training.cli import main as mf_main
from mf_training.train.config import DataConfig, SourceConfig, load_config, save_config
from mf_training.train.data import SampleMixer, Shard, collate, make_example, split_lidar
from mf_training.train.datasets import generate_sim_bag, read_source
from mf_training.train.logging import read_metrics
from mf_training.train.loop import build_models, train
from mf_training.train.state import checkpoint_dirs, latest_checkpoint
from mf_training.train.validation import evaluate_i2d

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "config" / "train_tiny.yaml"
SIM = SourceConfig(path="sim:indoor", frames=4, seed=0, width=80, height=64)


@pytest.fixture(scope="module")
def sim_cache(tmp_path_factory) -> Path:
    """One tiny synthetic bag (4 frames, 80x64) per test module, in the sim cache layout."""
    cache = tmp_path_factory.mktemp("sim_cache")
    generate_sim_bag(SIM, cache)
    return cache


def tiny(sim_cache: Path, *overrides: str):
    """The test config with the module's sim cache and extra overrides."""
    return load_config(TINY, [f"data.cache_dir={sim_cache}", *overrides])


def train_losses(run_dir: Path, key: str = "loss") -> list[float]:
    return [r[key] for r in read_metrics(run_dir)]


# ---------------------------------------------------------------- config


def test_config_composes_base_files_and_types_overrides(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(f"base: {TINY}\nsteps: 7\noptim:\n  lr: 5.0e-4\n")
    config = load_config(child, ["optim.warmup_steps=3", "data.hflip=true", "optim.betas=[0.8, 0.9]"])
    assert config.steps == 7 and config.optim.lr == 5e-4 and config.optim.warmup_steps == 3
    assert config.data.hflip is True and config.optim.betas == (0.8, 0.9)
    assert config.model.name == "MF-XS"  # from train_tiny.yaml
    assert config.stage == "modality-forcing" and config.mix.p_d2i == 0.0  # from modality_forcing.yaml
    assert config.optim.grad_clip == 1.0  # from train_base.yaml
    saved = tmp_path / "resolved.yaml"
    save_config(config, saved)
    assert load_config(saved) == config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1e-3", "did you mean optim.lr"),
        ("data.widht=64", "did you mean data.width"),
        ("optim.lr=fast", "optim.lr must be a number"),
        ("data.hflip=maybe", "must be true or false"),
        ("steps=2.5", "steps must be an integer"),
        ("stage=finetune", "stage must be one of"),
        ("trainable=head", "trainable must be one of"),
        ("trainable=refine_head", "trainable=refine_head trains the head of a trained model"),
        (["trainable=refine_head", "init_from=default", "lora.rank=4"], "drop lora.rank"),
        ("release.refine_size=-1", "release.refine_size must be >= 0"),
        ("release.nearest_share=1.5", "release.nearest_share must be 'auto'"),
        ("release.nearest_share=often", "release.nearest_share must be 'auto'"),
        ("model.name=MF-XXL", "unknown model 'MF-XXL'"),
        ("model.overrides={widht: 3}", "unknown model setting"),
        ("model.overrides={width: wide}", "model setting width must be int"),
        ("model.overrides={width: '256'}", "model setting width must be int"),
        ("model.overrides={qk_norm: 1}", "model setting qk_norm must be bool"),
        ("batch_size=3", None),  # valid on its own; only a world size that does not divide it fails
        ("noequals", "must look like key.sub=value"),
    ],
)
def test_bad_config_values_raise_input_errors(override, message):
    if message is None:
        assert load_config(TINY, [override]).batch_size == 3
        with pytest.raises(InputError, match="multiple of"):
            load_config(TINY, [override, "micro_batch_size=2"]).accumulation_steps(1)
        return
    with pytest.raises(InputError, match=message):
        load_config(TINY, override if isinstance(override, list) else [override])


def test_missing_config_file_and_base_cycle(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    loop = tmp_path / "a.yaml"
    loop.write_text("base: a.yaml\n")
    with pytest.raises(InputError, match="includes itself"):
        load_config(loop)


# ---------------------------------------------------------------- data order


def test_mixer_is_deterministic_and_weighted():
    pool = list(range(10))  # stand-ins: the mixer only indexes the pool
    source_of = np.array([0] * 8 + [1] * 2)
    mixer = SampleMixer(pool, source_of, [1.0, 4.0], seed=3)
    epoch = mixer.epoch_order(0)
    assert len(epoch) == 10
    assert (source_of[epoch] == 1).sum() == 8  # weight 4 of 5 -> 8 of 10 draws from the 2-sample source
    again = SampleMixer(pool, source_of, [1.0, 4.0], seed=3)
    assert np.array_equal(again.indices(7, 9), mixer.indices(7, 9))  # spans the epoch boundary
    assert not np.array_equal(mixer.epoch_order(1), epoch)


def test_shards_split_the_global_batch_the_same_way_for_any_world_size():
    single = Shard(rank=0, world_size=1, micro_batch=2, accumulation=2).micro_positions(5)
    ranks = [Shard(rank=r, world_size=2, micro_batch=2, accumulation=1).micro_positions(5) for r in (0, 1)]
    assert [p.tolist() for p in single] == [ranks[0][0].tolist(), ranks[1][0].tolist()] == [[20, 21], [22, 23]]


def test_conditioned_views_split_the_sweep_and_share_the_fed_lidar_scale(sim_cache):
    from mf_core.depth_codec import decode_depth

    samples = read_source(SIM, sim_cache)
    config = tiny(sim_cache, "data.width=48", "data.height=32", "data.max_zoom=1.5", "data.hflip=true").data
    mix = TrainingMix(sparse_input_fraction=0.5, sparse_drop_prob=0.0)
    example = make_example(samples[0], config, np.random.default_rng(0), mix, conditioned=True)
    assert example["image"].shape == (3, 32, 48) and example["image"].abs().max() <= 1.0
    fed, valid = example["sparse_mask"], example["depth_valid"]
    lidar = example["metric_lidar"][fed]
    assert lidar.numel() > 0 and set(lidar.tolist()) <= set(samples[0].sparse_depth[samples[0].sparse_depth > 0])
    assert not (fed & valid).any() and valid.float().mean() > 0.5  # dense GT, minus the fed points
    scale = example["depth_scale"]
    assert scale.item() == pytest.approx(lidar.mean().item(), rel=1e-5)  # the fed points' own mean, as at inference
    torch.testing.assert_close(decode_depth(example["sparse_depth"][None], scale)[0][fed], lidar)
    torch.testing.assert_close(decode_depth(example["depth"][None], scale)[0][valid],
                               example["metric_target"][valid], rtol=1e-4, atol=1e-4)
    plain = make_example(samples[0], config, np.random.default_rng(0))  # not conditioned: nothing fed
    assert not plain["sparse_mask"].any() and plain["depth_valid"].float().mean() > 0.5


def test_segment_holdout_holds_out_pieces_of_scan_lines_not_single_points():
    from mf_core.self_validation import held_out_tiles
    from mf_training.train.data import SEGMENT_TILE

    sweep = np.zeros((96, 240), np.float32)
    sweep[::6] = 10.0  # a scan line every 6th row, a return on every pixel of it
    config = DataConfig(sources=[SourceConfig(path="x")], width=240, height=96, use_gt_as_supervision=False)
    for prob in (0.0, 1.0):
        mix = TrainingMix(sparse_input_fraction=0.8, segment_holdout_prob=prob, sparse_drop_prob=0.0)
        fed, target = split_lidar(sweep, None, config, mix, np.random.default_rng(3), conditioned=True)
        held = target[::6] > 0  # (lines, w)
        assert not ((fed > 0) & (target > 0)).any() and 0.12 < held.mean() < 0.28
        # how often a held-out point's right-hand neighbour on its own line is fed
        fed_beside = (held[:, :-1] & ~held[:, 1:]).sum() / held[:, :-1].sum()
        if prob == 0.0:
            assert fed_beside > 0.7  # single points: almost always a fed neighbour one pixel away
        else:
            assert fed_beside < 1.5 / SEGMENT_TILE[1]  # segments: only at a segment's end
    mask = held_out_tiles((50, 70), SEGMENT_TILE, 0.3, np.random.default_rng(0))
    assert mask.shape == (50, 70) and 0.15 < mask.mean() < 0.45


def test_line_thinning_keeps_whole_scan_lines_and_makes_the_dropped_ones_targets():
    from mf_training.train.data import thin_scan_lines

    sweep = np.zeros((96, 240), np.float32)
    sweep[5::6] = 10.0  # 16 scan lines, the lowest on the last row (95)
    sweep[40:47, 100] = 0.0  # a line without a return in one column
    kept = thin_scan_lines(sweep, 2, 0)
    lines = np.flatnonzero(kept.any(axis=1))
    assert list(lines) == list(range(95, 0, -12))[::-1]  # every 2nd line from the bottom, each whole
    assert np.array_equal(kept[lines], sweep[lines] > 0)
    assert not thin_scan_lines(sweep, 3, 1)[95].any() and thin_scan_lines(sweep, 3, 1)[89].all()
    config = DataConfig(sources=[SourceConfig(path="x")], width=240, height=96, use_gt_as_supervision=False)
    mix = TrainingMix(sparse_input_fraction=1.0, line_drop_prob=1.0, sparse_drop_prob=0.0)
    fed, target = split_lidar(sweep, None, config, mix, np.random.default_rng(0), conditioned=True)
    fed_lines = np.flatnonzero(fed.any(axis=1))
    assert 5 <= len(fed_lines) <= 8 and not ((fed > 0) & (target > 0)).any()
    assert np.array_equal((fed > 0) | (target > 0), sweep > 0)  # nothing lost: dropped lines are targets
    sweep[65, 30:200] = 0.0  # a gap wider than the span: above it the lines alternate from a new start
    per_column = thin_scan_lines(sweep, 2, 0).sum(axis=0)
    assert np.all(np.abs(per_column - (sweep > 0).sum(axis=0) / 2) <= 0.5)  # each column: every other return


def test_frame_size_views_keep_the_inference_scale_and_pad_small_frames():
    from mf_training.eval.synthetic import default_camera, synthetic_sample
    from mf_training.train.config import DataConfig
    from mf_training.train.data import choose_view

    data = DataConfig(width=96, height=64, frame_size=64, max_zoom=1.0, hflip=False)
    view = choose_view((80, 100), data, np.random.default_rng(0))
    assert view.window == (0, 0, 80, 100) and view.size == (51, 64)  # 100 px wide frame shown 64 px wide
    big = choose_view((480, 640), DataConfig(width=96, height=64, frame_size=320, max_zoom=1.0), None)
    assert big.size == (64, 96) and big.window[2:] == (128, 192)  # half scale, like a 320-wide processing size
    sample = synthetic_sample("s", default_camera(100, 80), seed=0)
    example = make_example(sample, data, None, TrainingMix(sparse_drop_prob=0.0), conditioned=True)
    assert example["image"].shape == (3, 64, 96)
    assert torch.all(example["image"][:, 51:] == 0) and torch.all(example["image"][:, :, 64:] == 0)
    for key in ("sparse_mask", "depth_valid"):
        assert not example[key][:, 51:].any() and not example[key][:, :, 64:].any()
    assert example["sparse_mask"][:, :51, :64].any()


def test_training_and_inference_feed_the_model_the_same_lidar_encoding():
    """The frame-to-metres path is one: for the same frame and fed points, the training example and
    DepthEstimator give the model identical inputs, and both decode with the same scale."""
    from mf_core.model import build_model
    from mf_core.pipeline import DepthEstimator
    from mf_training.eval.synthetic import default_camera, synthetic_sample
    from mf_training.train.config import DataConfig

    sample = synthetic_sample("s", default_camera(128, 96), seed=1)
    data = DataConfig(width=128, height=96, frame_size=128, max_zoom=1.0, hflip=False)
    example = make_example(sample, data, None, TrainingMix(sparse_drop_prob=0.0), conditioned=True)
    model = build_model("MF-XS", depth_conditioned=True, refine_head=True, patch_size=16)
    seen = {}
    model.register_forward_hook(lambda m, args, kwargs, out: seen.update(kwargs), with_kwargs=True)
    fed = example["metric_lidar"][0].numpy()  # the points the example feeds, in metres
    result = DepthEstimator(model, processing_size=128).predict(sample.image, fed, "conditioned")
    torch.testing.assert_close(seen["sparse_depth"][0], example["sparse_depth"])
    assert torch.equal(seen["sparse_mask"][0], example["sparse_mask"])
    assert result.scale == pytest.approx(example["depth_scale"].item(), rel=1e-6)


# ---------------------------------------------------------------- runs


def test_resume_reproduces_the_uninterrupted_run_exactly(sim_cache, tmp_path):
    overrides = ("steps=6", "batch_size=2", "ckpt_every=2", "optim.warmup_steps=2", "data.max_zoom=1.3",
                 "data.hflip=true", "mix.p_i2d=0.3", "mix.p_d2i=0.3")
    full = train(tiny(sim_cache, *overrides), tmp_path / "full")
    interrupted = train(tiny(sim_cache, *overrides), tmp_path / "part", stop_after=3)
    assert interrupted.step == 3 and latest_checkpoint(tmp_path / "part").name == "step_00000003"
    resumed = train(load_config(tmp_path / "part" / "config.yaml"), tmp_path / "part", resume=True)
    assert resumed.step == 6
    # Same data order, crops, noise, optimiser moments, schedule and EMA: bitwise equal on CPU.
    assert train_losses(tmp_path / "part") == train_losses(tmp_path / "full")
    assert len(train_losses(tmp_path / "full")) == 6
    assert len(checkpoint_dirs(tmp_path / "part")) == 2  # keep_last
    ema_full, _ = load_model(latest_checkpoint(tmp_path / "full") / "model")
    ema_part, _ = load_model(latest_checkpoint(tmp_path / "part") / "model")
    for (name, a), b in zip(ema_full.state_dict().items(), ema_part.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert full.losses == resumed.losses


def _drop_moments(path: Path) -> None:
    tensors = load_file(path / "training_state.safetensors")
    save_file({k: v for k, v in tensors.items() if not k.endswith("/exp_avg")}, path / "training_state.safetensors")


def _set_meta(path: Path, **changes) -> None:
    meta_file = path / "training_state.json"
    meta = json.loads(meta_file.read_text())
    meta.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del meta[key]
    meta_file.write_text(json.dumps(meta))


_DAMAGES = {
    "tensors truncated": lambda p: (p / "training_state.safetensors").write_bytes(
        (p / "training_state.safetensors").read_bytes()[:1000]),
    "tensors empty": lambda p: (p / "training_state.safetensors").write_bytes(b""),
    "tensors a pickle": lambda p: (p / "training_state.safetensors").write_bytes(pickle.dumps({"a": 1})),
    "json truncated": lambda p: (p / "training_state.json").write_text((p / "training_state.json").read_text()[:40]),
    "step a string": lambda p: _set_meta(p, step="four"),
    "no scheduler": lambda p: _set_meta(p, scheduler=None),
    "AdamW moments missing": _drop_moments,
}


@pytest.fixture(scope="module")
def two_checkpoint_run(sim_cache, tmp_path_factory) -> tuple[Path, list[float]]:
    """A 4-step run with checkpoints at steps 2 and 4, and the losses of resuming it from step 2 to 5."""
    root = tmp_path_factory.mktemp("two_ckpt")
    run = root / "run"
    train(tiny(sim_cache, "steps=4", "batch_size=2", "ckpt_every=2", "keep_last=2"), run)
    assert [p.name for p in checkpoint_dirs(run)] == ["step_00000002", "step_00000004"]
    reference = root / "reference"
    shutil.copytree(run, reference)
    shutil.rmtree(checkpoint_dirs(reference)[-1])
    assert mf_main(["train", "--resume", str(reference), "steps=5"]) == 0
    return run, train_losses(reference)


@pytest.mark.parametrize("damage", sorted(_DAMAGES))
def test_resume_skips_a_damaged_newest_checkpoint_and_says_so(two_checkpoint_run, tmp_path, capsys, damage):
    source, reference_losses = two_checkpoint_run
    run = tmp_path / "run"
    shutil.copytree(source, run)
    _DAMAGES[damage](checkpoint_dirs(run)[-1])
    assert mf_main(["train", "--resume", str(run), "steps=5"]) == 0
    err = capsys.readouterr().err
    assert "skipping a damaged checkpoint" in err and "resuming from" in err and "step_00000002" in err
    assert latest_checkpoint(run).name == "step_00000005"
    assert train_losses(run) == reference_losses  # steps 3-5 continue exactly from the step-2 state


def test_resume_with_no_readable_checkpoint_or_a_truncated_config_exits_2(two_checkpoint_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(two_checkpoint_run[0], run)
    for path in checkpoint_dirs(run):
        _drop_moments(path)
    assert mf_main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "no readable checkpoint" in err and "optimizer state is incomplete" in err
    text = (run / "config.yaml").read_text()
    failing = []
    for cut in range(len(text)):  # a config cut anywhere loads or is an InputError, never anything else
        (tmp_path / "cut.yaml").write_text(text[:cut])
        try:
            load_config(tmp_path / "cut.yaml")
        except InputError:
            failing.append(cut)
    assert failing
    (run / "config.yaml").write_text(text[:failing[-1]])
    for command in (["train", "--resume", str(run)], ["release", "--run", str(run), "--out", str(tmp_path / "m")]):
        assert mf_main(command) == 2
        assert "config" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_resume_with_another_model_size_is_an_input_error(sim_cache, tmp_path):
    run = tmp_path / "run"
    train(tiny(sim_cache, "steps=1", "batch_size=1"), run)
    config = load_config(run / "config.yaml", ["model.overrides={n_single: 3}"])
    with pytest.raises(InputError, match="holds model MF-XS"):
        train(config, run, resume=True)
    # The CLI turns the same mistakes into exit code 2 with the message.
    assert mf_main(["train", "--resume", str(run), "model.name=MF-S"]) == 2
    assert mf_main(["train", "--config", str(TINY), "--out", str(tmp_path / "x"), "model.name=MF-Q"]) == 2
    assert mf_main(["train", "--resume", str(tmp_path / "none")]) == 2
    with pytest.raises(InputError, match="holds model MF-XS"):
        build_models(load_config(TINY, [f"init_from={run}", "model.name=MF-S"]))


def test_init_from_takes_the_weights_under_another_run_setting_only(sim_cache, tmp_path):
    """A trained model's weights load under another value of a setting that only changes how it runs
    (refine_reads_transformer: config/train_head_alone.yaml on the shipped model); a setting that changes
    the weights is refused, and so is a resumed run whose run setting changed (one run, one behaviour)."""
    from mf_core.checkpoint import resolve_model_path

    head_alone = "model.overrides={depth_conditioned: true, refine_head: true, patch_size: 16, " \
                 "refine_reads_transformer: false}"
    model, _ = build_models(load_config(REPO / "config" / "train_head_alone.yaml"))
    shipped, _ = load_model(resolve_model_path("default"))
    assert not model.config.refine_reads_transformer and shipped.config.refine_reads_transformer
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), shipped.state_dict().values(),
                                                 strict=True))
    with pytest.raises(InputError, match="holds model MF-XS"):
        build_models(load_config(TINY, ["init_from=default", "stage=modality-forcing", head_alone.replace(
            "patch_size: 16", "patch_size: 8")]))
    run = tmp_path / "run"
    train(tiny(sim_cache, "steps=1", "batch_size=1", "model.overrides={depth_conditioned: true, refine_head: true}"),
          run)
    changed = load_config(run / "config.yaml", ["model.overrides={depth_conditioned: true, refine_head: true, "
                                                 "refine_reads_transformer: false}"])
    with pytest.raises(InputError, match="holds model MF-XS"):
        train(changed, run, resume=True)


def test_release_writes_an_fp16_model_that_predicts_like_the_run(sim_cache, tmp_path):
    from mf_core.checkpoint import load_model, read_checkpoint_config
    from mf_core.pipeline import DepthEstimator
    from mf_training.train.state import latest_checkpoint

    run = tmp_path / "run"
    train(tiny(sim_cache, "steps=2", "batch_size=1", "model.overrides={depth_conditioned: true, refine_head: true}"),
          run)
    assert mf_main(["release", "--run", str(run), "--out", str(tmp_path / "model")]) == 0
    config, metadata = read_checkpoint_config(tmp_path / "model")
    assert config.depth_conditioned and metadata["recommended_mode"] == "conditioned"
    assert metadata["processing_size"] == 100 and metadata["step"] == 2  # 5/4 of the 80-px crop
    assert metadata["refine_size"] == 100  # no data.frame_size: the head runs at the processing size
    assert metadata["train_resolution"] == [64, 80] and metadata["refine_strength"] == 1.0
    assert metadata["nearest_share"] == "auto"  # the release section's default
    for bad in (["--refine-strength", "2"], ["--refine-size", "0"], ["--nearest-share", "lots"]):
        assert mf_main(["release", "--run", str(run), "--out", str(tmp_path / "m3"), *bad]) == 2
    assert not (tmp_path / "m3").exists()
    released, _ = load_model(tmp_path / "model")
    full, _ = load_model(latest_checkpoint(run) / "model")
    assert released.depth_final.linear.weight.dtype == torch.float32  # depth head back in fp32
    for (name, a), b in zip(released.state_dict().items(), full.state_dict().values(), strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-3, atol=1e-3, msg=name)
    assert DepthEstimator.from_checkpoint(tmp_path / "model").processing_size == 100
    assert mf_main(["release", "--run", str(tmp_path / "nothing"), "--out", str(tmp_path / "m2")]) == 2
    # The run's release section is what mf release writes without flags; a flag overrides its own setting only.
    save_config(load_config(run / "config.yaml", ["release.processing_size=128", "release.refine_strength=0.3",
                                                  "release.refine_strength_near=0.9", "release.refine_size=160",
                                                  "release.nearest_share=0.4"]),
                run / "config.yaml")
    keys = ("processing_size", "refine_strength", "refine_strength_near", "refine_size", "nearest_share")
    for name, flags, expected in (("m4", [], (128, 0.3, 0.9, 160, 0.4)),
                                  ("m5", ["--refine-strength", "0.5", "--refine-size", "200", "--nearest-share",
                                          "auto"], (128, 0.5, 0.9, 200, "auto"))):
        assert mf_main(["release", "--run", str(run), "--out", str(tmp_path / name), *flags]) == 0
        _, metadata = read_checkpoint_config(tmp_path / name)
        assert tuple(metadata[k] for k in keys) == expected
    estimator = DepthEstimator.from_checkpoint(tmp_path / "m4")
    assert tuple(getattr(estimator, k) for k in keys) == (128, 0.3, 0.9, 160, 0.4)
    assert mf_main(["release", "--run", str(run), "--out", str(tmp_path / "m6"), "--nearest-share", "none"]) == 0
    assert "nearest_share" not in read_checkpoint_config(tmp_path / "m6")[1]  # none: the model's output as it is


def test_validation_scores_each_checkpoint_at_the_release_settings(sim_cache, tmp_path):
    """Training validation runs the model as the run's release section says it will ship: at strength 0
    and without the nearest share a refine_head model outputs its prior exactly (score 1), at the default full
    strength the head's learned correction shows (score not 1), and with the head at another refine size, or
    with the nearest share fitted per frame, the same weights score differently; so the step mf release picks
    is judged as it will run."""
    from mf_core.checkpoint import read_checkpoint_config

    sources = "data.sources=[{path: 'sim:indoor', frames: 4, seed: 0, width: 80, height: 64, val_count: 1}]"
    scores = {}
    for name, release in (("full", ["release.nearest_share=none"]),
                          ("none", ["release.refine_strength=0", "release.refine_strength_near=0",
                                    "release.nearest_share=none"]),
                          ("half_size", ["release.refine_size=40", "release.nearest_share=none"]),
                          ("auto", [])):
        run = tmp_path / name
        train(tiny(sim_cache, sources, "steps=3", "batch_size=2", "val_every=3", "optim.warmup_steps=0",
                   "model.overrides={depth_conditioned: true, refine_head: true, patch_size: 16}", *release), run)
        scores[name] = read_checkpoint_config(run / "best")[1]["validation"]["score"]
    assert scores["none"] == pytest.approx(1.0, abs=1e-5)
    assert abs(scores["full"] - 1.0) > 1e-4
    assert abs(scores["half_size"] - scores["full"]) > 1e-5  # the 80x64 frames' head at 40x32 instead of 80x64
    assert abs(scores["auto"] - scores["full"]) > 1e-5  # the default release section mixes the nearest return in


def test_pretrain_then_modality_forcing_with_distillation(sim_cache, tmp_path):
    pre = tmp_path / "pre"
    pre_config = load_config(REPO / "config" / "pretrain.yaml", [
        f"data.cache_dir={sim_cache}", "data.sources=[{path: 'sim:indoor', frames: 4, width: 80, height: 64}]",
        "data.width=80", "data.height=64", "model.name=MF-XS", "steps=2", "batch_size=2", "perf.device=cpu",
        "log_every=1", "val_every=0"])
    result = train(pre_config, pre)
    assert result.losses["depth_x0"] == 0.0 and result.losses["image_velocity"] > 0  # depth loss off
    mf_config = tiny(sim_cache, f"init_from={pre}", "distill=true", "steps=2", "batch_size=2")
    model, teacher = build_models(mf_config)
    # The depth stream starts as a copy of the pretrained image stream; the teacher is the frozen init.
    for a, b in zip(model.time_embed_depth.parameters(), model.time_embed_image.parameters(), strict=True):
        assert torch.equal(a, b)
    assert teacher is not None and not any(p.requires_grad for p in teacher.parameters())
    out = train(mf_config, tmp_path / "mf")
    assert math.isfinite(out.losses["distill"]) and out.losses["depth_x0"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("sharding", [
    [],  # DDP
    ["perf.fsdp=true"],  # FSDP2
], ids=["ddp", "fsdp2"])
def test_two_process_torchrun_matches_one_process(sim_cache, tmp_path, sharding):
    common = [f"data.cache_dir={sim_cache}", "steps=3", "batch_size=4", "micro_batch_size=2", "log_every=1",
              "data.max_zoom=1.3", "mix.p_i2d=0.3", "mix.p_d2i=0.3", *sharding]
    assert mf_main(["train", "--config", str(TINY), "--out", str(tmp_path / "one"), *common]) == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "mf_training.cli", "train",
         "--config", str(TINY), "--out", str(tmp_path / "two"), *common],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = train_losses(tmp_path / "one"), train_losses(tmp_path / "two")
    assert len(one) == len(two) == 3
    # Same samples and noise per micro-batch; only the order of float sums differs (gloo all-reduce).
    np.testing.assert_allclose(two, one, rtol=1e-4)


@pytest.mark.slow
def test_tiny_model_overfits_a_few_sim_frames(sim_cache, tmp_path):
    config = tiny(sim_cache)
    result = train(config, tmp_path / "run")
    depth = train_losses(tmp_path / "run", "depth_x0")
    first, last = np.mean(depth[:5]), np.mean(depth[-20:])
    print(f"depth loss {first:.4f} -> {last:.4f} ({first / last:.1f}x)")
    assert first / last >= 10.0
    model, _ = load_model(latest_checkpoint(result.run_dir) / "model")
    views = collate([make_example(s, config.data, None) for s in read_source(SIM, sim_cache)])
    scores = evaluate_i2d(model, views, steps=1)
    print(f"i2d AbsRel (1 step, aligned) {scores.abs_rel:.4f}, delta1 {scores.delta1:.3f} over {scores.count}")
    assert scores.count == 4 and scores.abs_rel < 0.05


def test_validation_of_a_fresh_refining_model_scores_exactly_its_prior():
    """A fresh refine_head model outputs its LiDAR prior (the scan-line fill) at full resolution, so
    frame-by-frame validation must find the same RMSE for both: every ratio and the score are 1."""
    from mf_core.model import build_model
    from mf_training.eval.synthetic import default_camera, synthetic_sample
    from mf_training.train.validation import validate_frames

    samples = [synthetic_sample(f"s{i}", default_camera(160, 112), seed=i) for i in range(3)]
    lidar_only = [dataclasses.replace(s, name=f"l{i}", gt_depth=None) for i, s in enumerate(samples)]
    model = build_model("MF-XS", depth_conditioned=True, refine_head=True, patch_size=16)
    result = validate_frames(model, samples + lidar_only, ["dense"] * 3 + ["lidar"] * 3, processing_size=96)
    assert set(result) == {"dense/rmse", "dense/rmse_prior", "dense/ratio", "lidar/rmse", "lidar/rmse_prior",
                           "lidar/ratio", "score"}
    assert result["dense/rmse"] > 0 and result["lidar/rmse"] > 0
    assert result["dense/ratio"] == pytest.approx(1.0, abs=1e-4)
    assert result["lidar/ratio"] == pytest.approx(1.0, abs=1e-4)
    assert result["score"] == pytest.approx(1.0, abs=1e-4)


def test_init_from_a_depth_model_fine_tunes_it_as_it_is(sim_cache, tmp_path):
    """init_from a post-trained model (a run, or the shipped "default") keeps its depth stream: fine-tuning."""
    run = tmp_path / "mf"
    train(tiny(sim_cache, "steps=2", "batch_size=2"), run)
    trained, _ = load_model(latest_checkpoint(run) / "model")
    model, _ = build_models(tiny(sim_cache, f"init_from={run}"))
    for name, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name  # nothing re-initialised
    image, depth = model.joint_blocks[0].streams["image"].qkv.weight, model.joint_blocks[0].streams["depth"].qkv.weight
    assert not torch.equal(image, depth)  # the trained depth stream, not a copy of the image stream
    shipped, _ = build_models(tiny(sim_cache, "init_from=default", "model.name=init_from"))
    default, _ = load_model(REPO / "models" / "mf-default")
    assert torch.equal(shipped.depth_final.linear.weight, default.depth_final.linear.weight)


def test_refine_head_stage_trains_the_head_only(sim_cache, tmp_path):
    """trainable=refine_head on a trained refining model: the head's weights move, nothing else does; a model
    without a head is an input error."""
    refining = "model.overrides={depth_conditioned: true, refine_head: true, patch_size: 8}"
    run = tmp_path / "mf"
    train(tiny(sim_cache, refining, "steps=1", "batch_size=2"), run)
    before, _ = load_model(latest_checkpoint(run) / "model")
    stage = tmp_path / "head"
    train(tiny(sim_cache, refining, f"init_from={run}", "trainable=refine_head", "steps=2", "batch_size=2",
               "optim.warmup_steps=0", "optim.ema_decay=0"), stage)
    after, _ = load_model(latest_checkpoint(stage) / "model")
    moved = {name for name, value in after.state_dict().items() if not torch.equal(value, before.state_dict()[name])}
    assert moved and all(name.startswith("refine.") for name in moved), sorted(moved)[:5]
    assert "refine.out.weight" in moved
    plain = tmp_path / "plain"
    train(tiny(sim_cache, "steps=1", "batch_size=1"), plain)
    with pytest.raises(InputError, match="has no refinement head"):
        train(tiny(sim_cache, f"init_from={plain}", "trainable=refine_head", "steps=1", "batch_size=1"),
              tmp_path / "bad")


def test_a_bag_from_a_moving_robot_trains_on_deskewed_sweeps(tmp_path):
    """``fixed_frame`` / ``point_time`` on a bag source read it as ``mf export --fixed-frame`` does: every return
    on the pixel and depth the camera saw; without them one static extrinsic misplaces most returns."""
    from test_bag_samples import gt_depth, write_moving_bag

    bag = tmp_path / "rolling"
    pixels = write_moving_bag(bag, lidar_offsets_ms=[7, 23, -17, 7], sweep_ms=90)
    moved = read_source(SourceConfig(path=str(bag), fixed_frame="odom"), tmp_path)
    still = read_source(SourceConfig(path=str(bag)), tmp_path)
    for frame, (sample, static) in enumerate(zip(moved, still, strict=True)):
        valid = np.flatnonzero(sample.sparse_depth > 0)
        assert set(valid.tolist()) == set(pixels[frame].tolist())
        np.testing.assert_allclose(sample.sparse_depth.flat[valid], gt_depth(frame).flat[valid], rtol=1e-3)
        assert np.isin(np.flatnonzero(static.sparse_depth > 0), pixels[frame]).mean() < 0.5
    with pytest.raises(InputError, match="point_time needs fixed_frame"):
        SourceConfig(path=str(bag), point_time="t")
    with pytest.raises(InputError, match="your own bags only"):
        SourceConfig(path="sim:street", fixed_frame="odom")
    from mf_training.cli import main as mf_main

    assert mf_main(["export", "--bag", str(bag), "--out", str(tmp_path / "folder"), "--fixed-frame", "odom"]) == 0
    with pytest.raises(InputError, match=r"\['fixed_frame', 'point_time'\] do not apply to a folder"):
        read_source(SourceConfig(path=str(tmp_path / "folder"), fixed_frame="odom"), tmp_path)


def test_a_released_vae_model_carries_its_vae_and_loads_anywhere(sim_cache, tmp_path, monkeypatch):
    from helpers import random_taef2

    from mf_core.checkpoint import VAE_DIR, read_checkpoint_config
    from mf_core.model.taef2 import ENCODER_FILE

    random_taef2(tmp_path / "weights" / "taef2")
    monkeypatch.chdir(tmp_path)  # the config names the VAE relative to the working directory, as ../shared/... is
    run = tmp_path / "run"
    train(tiny(sim_cache, "steps=1", "batch_size=1", "model.overrides={patch_size: 8, image_tokenizer: vae, "
               "vae_path: weights/taef2}"), run)
    trained, _ = read_checkpoint_config(latest_checkpoint(run) / "model")
    assert trained.vae_path == str(tmp_path / "weights" / "taef2")  # recorded absolute: loads from any directory
    assert mf_main(["release", "--run", str(run), "--out", str(tmp_path / "model"), "--latest"]) == 0
    assert json.loads((tmp_path / "model" / "config.json").read_text())["model"]["vae_path"] == VAE_DIR
    assert (tmp_path / "model" / VAE_DIR / ENCODER_FILE).read_bytes() == \
        (tmp_path / "weights" / "taef2" / ENCODER_FILE).read_bytes()
    full, _ = load_model(latest_checkpoint(run) / "model")
    image = torch.rand(1, 3, 64, 80) * 2 - 1
    expected = full.encode_image(image)
    moved = tmp_path / "elsewhere" / "model"
    shutil.move(tmp_path / "model", moved)
    shutil.rmtree(tmp_path / "weights")  # the folder the run trained with is gone
    monkeypatch.chdir(sim_cache)
    released, _ = load_model(moved)
    assert released.config.vae_path == str(moved / VAE_DIR)
    torch.testing.assert_close(released.encode_image(image), expected)
    # init_from the released model with a config naming another copy of the VAE: its location is not part of the
    # weights
    shutil.copytree(moved / VAE_DIR, tmp_path / "copy")
    model, _ = build_models(tiny(sim_cache, f"init_from={moved}", "model.overrides={patch_size: 8, "
                                 f"image_tokenizer: vae, vae_path: {tmp_path / 'copy'}}}"))
    assert model.config.vae_path == str(tmp_path / "copy")
