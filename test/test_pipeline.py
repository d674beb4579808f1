"""DepthEstimator end to end with a real (randomly initialised) MF-XS: shapes, units, modes, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import random_model

from mf_core.checkpoint import save_model
from mf_core.errors import InputError
from mf_core.pipeline import DepthEstimator

HEIGHT, WIDTH = 30, 45  # not multiples of the patch size: the pipeline resizes



@pytest.fixture(scope="module")
def estimator() -> DepthEstimator:
    # Small weights keep the random model's depth smooth, so resizing back to 30x45 barely moves LiDAR pixels.
    return DepthEstimator(random_model(std=0.02))


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def _lidar_from(relative: np.ndarray, scale: float, shift: float, count: int = 300) -> np.ndarray:
    """Sparse 'LiDAR' that is an exact affine function of a relative prediction at random pixels."""
    rng = np.random.default_rng(1)
    sparse = np.zeros(relative.shape, dtype=np.float32)
    usable = np.flatnonzero(relative.ravel() > 0)
    picked = rng.choice(usable, count, replace=False)
    sparse.flat[picked] = scale * relative.flat[picked] + shift
    return sparse


def test_i2d_is_relative_at_the_caller_resolution(estimator, image):
    result = estimator.predict(image, mode="i2d")
    assert result.depth.shape == (HEIGHT, WIDTH) and result.depth.dtype == np.float32
    assert result.confidence.shape == (HEIGHT, WIDTH) and result.confidence.dtype == np.float32
    assert result.confidence.min() >= 0 and result.confidence.max() <= 1
    assert not result.metric and (result.scale, result.shift) == (1.0, 0.0)
    assert np.all(result.depth >= 0) and result.depth.std() > 0
    assert set(result.timings) == {"preprocess", "model", "align", "postprocess", "total"}
    assert np.array_equal(estimator.predict(image, mode="i2d").depth, result.depth)  # seeded


def test_i2d_aligned_recovers_metric_scale(estimator, image):
    relative = estimator.predict(image, mode="i2d").depth
    sparse = _lidar_from(relative, scale=8.0, shift=1.5)
    result = estimator.predict(image, sparse, mode="i2d-aligned")
    assert result.metric
    assert (result.scale, result.shift) == pytest.approx((8.0, 1.5), rel=1e-4)
    points = sparse > 0
    np.testing.assert_allclose(result.depth[points], sparse[points], rtol=1e-4)
    assert result.alignment.inlier_fraction == 1.0


def test_confidence_drops_where_the_depth_leaves_its_nearest_lidar_return():
    """Two flat patches between scan lines, equally far from returns that all read 10 m: the one whose depth
    says 14 m (a surface the estimate chose between the lines) is trusted less than the one at 10 m, by both the
    disagreement with its nearest return and the departure from the scan-line fill."""
    from mf_core.pipeline import _confidence  # the per-pixel terms, without a model in the way

    sparse = np.zeros((60, 80), np.float32)
    sparse[::12, ::2] = 10.0  # scan lines 12 px apart
    depth = np.full(sparse.shape, 10.0, np.float32)
    depth[14:23, 45:70] = 14.0  # between the lines at rows 12 and 24
    confidence = _confidence(depth, sparse, np.zeros((60, 80, 3), np.uint8))
    chose, agrees = confidence[16:21, 50:65], confidence[16:21, 10:25]  # same rows: same distance to a return
    # 40 % off the nearest return and off the scan-line fill (10 m everywhere): exp(-0.4 / 0.02) twice, 4e-18
    assert np.all(chose < 1e-12 * agrees.min())
    assert agrees.min() > 0.2  # (what proximity leaves 6 px from a return on an image this small)


def test_confidence_is_higher_near_agreeing_lidar(estimator, image):
    relative = estimator.predict(image, mode="i2d").depth
    sparse = _lidar_from(relative, scale=8.0, shift=1.5)
    sparse[: HEIGHT // 2] = 0  # LiDAR only in the lower half
    result = estimator.predict(image, sparse, mode="i2d-aligned")
    assert result.confidence[-5:].mean() > result.confidence[:5].mean()
    bad = sparse.copy()
    bad[sparse > 0] *= np.random.default_rng(2).uniform(0.5, 1.5, np.count_nonzero(sparse))
    assert estimator.predict(image, bad, mode="i2d-aligned").confidence.mean() < result.confidence.mean()
    without = estimator.predict(image, sparse, mode="i2d-aligned", with_confidence=False)
    assert without.confidence is None and np.array_equal(without.depth, result.depth)


def test_guided_pastes_lidar_and_stays_metric(estimator):
    # At a multiple of the patch size no resampling blurs the pasted LiDAR values.
    image = np.random.default_rng(3).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    relative = estimator.predict(image, mode="i2d").depth
    sparse = _lidar_from(relative, scale=5.0, shift=0.5)
    points = sparse > 0
    sparse[points] *= np.random.default_rng(4).uniform(0.96, 1.04, np.count_nonzero(points))  # not affine
    aligned = estimator.predict(image, sparse, mode="i2d-aligned")
    guided = estimator.predict(image, sparse, mode="guided", steps=3)
    assert guided.metric and guided.depth.shape == (32, 48)
    aligned_error = np.abs(aligned.depth[points] - sparse[points]) / sparse[points]
    guided_error = np.abs(guided.depth[points] - sparse[points]) / sparse[points]
    assert np.median(aligned_error) > 0.01
    assert np.median(guided_error) < 1e-3


def test_processing_size_keeps_the_caller_resolution(image):
    small = DepthEstimator(random_model(), processing_size=16)
    result = small.predict(image, mode="i2d")
    assert result.depth.shape == (HEIGHT, WIDTH)


def test_conditioned_mode(image):
    relative = DepthEstimator(random_model()).predict(image, mode="i2d").depth
    sparse = _lidar_from(relative, scale=8.0, shift=1.5)
    result = DepthEstimator(random_model(depth_conditioned=True)).predict(image, sparse, mode="conditioned")
    assert result.metric and result.depth.shape == (HEIGHT, WIDTH) and result.depth.max() > 0
    with pytest.raises(InputError, match="depth_conditioned=True"):
        DepthEstimator(random_model()).predict(image, sparse, mode="conditioned")


def test_a_fresh_refining_model_outputs_its_prior_at_the_native_resolution():
    """At any processing size the output is composed at the input resolution, from the full-resolution
    LiDAR: a fresh refine_head model gives exactly the scan-line fill of the native sweep (the LiDAR is
    kept exactly), with the support mask, the LiDAR residual and keep_lidar on top."""
    from mf_core.completion import complete_scanline
    from mf_core.model import build_model
    from mf_training.eval.synthetic import default_camera, synthetic_sample

    sample = synthetic_sample("s", default_camera(200, 150), seed=2)
    model = build_model("MF-XS", depth_conditioned=True, refine_head=True, patch_size=16)
    expected = complete_scanline(sample.image, sample.sparse_depth, sample.camera)
    for size in (96, 200):  # composed again at 200x150, or by the model itself at the native size
        result = DepthEstimator(model, processing_size=size).predict(sample.image, sample.sparse_depth, "conditioned")
        np.testing.assert_allclose(result.depth, expected, rtol=2e-5)
        assert result.metric and result.lidar_residual < 1e-5 and result.alignment is None
    assert result.valid.dtype == bool and 0.5 < result.valid.mean() < 1.0  # the sky has no LiDAR near it
    assert not result.valid[0].any()  # the top row is far above the top beam
    # Trained, the output still passes through every LiDAR pixel (its neighbours there are itself).
    torch.manual_seed(0)  # the weights, not the order the tests ran in, decide the values
    trained = build_model("MF-XS", depth_conditioned=True, refine_head=True, patch_size=16)
    torch.nn.init.normal_(trained.refine.out.weight, std=0.01)
    moved = DepthEstimator(trained, processing_size=96).predict(sample.image, sample.sparse_depth, "conditioned")
    points = sample.sparse_depth > 0
    assert not np.allclose(moved.depth, expected, rtol=1e-3)
    np.testing.assert_allclose(moved.depth[points], sample.sparse_depth[points], rtol=1e-5)
    # A model without the head strays from its LiDAR: keep_lidar writes the measurements back.
    plain = DepthEstimator(random_model(depth_conditioned=True), processing_size=96)
    strayed = plain.predict(sample.image, sample.sparse_depth, "conditioned")
    kept = plain.predict(sample.image, sample.sparse_depth, "conditioned", keep_lidar=True)
    assert strayed.lidar_residual > 0.01
    np.testing.assert_array_equal(kept.depth[points], sample.sparse_depth[points])


def test_refine_strength_scales_the_learned_part_in_log_depth(tmp_path):
    """strength 0 is the prior; strength s moves log depth s of the way from the prior to the full head."""
    from mf_core.completion import complete_scanline
    from mf_core.model import build_model
    from mf_training.eval.synthetic import default_camera, synthetic_sample

    sample = synthetic_sample("s", default_camera(200, 150), seed=3)
    torch.manual_seed(0)  # the weights, not the order the tests ran in, decide the values
    model = build_model("MF-XS", depth_conditioned=True, refine_head=True, patch_size=16)
    torch.nn.init.normal_(model.refine.out.weight, std=0.01)
    depth = {s: DepthEstimator(model, processing_size=96, refine_strength=s).predict(
        sample.image, sample.sparse_depth, "conditioned").depth for s in (0.0, 0.3, 1.0)}
    np.testing.assert_allclose(depth[0.0], complete_scanline(sample.image, sample.sparse_depth, sample.camera),
                               rtol=2e-5)
    moved = np.abs(np.log(depth[1.0]) - np.log(depth[0.0])) > 1e-3
    assert moved.mean() > 0.1
    np.testing.assert_allclose(np.log(depth[0.3])[moved] - np.log(depth[0.0])[moved],
                               0.3 * (np.log(depth[1.0])[moved] - np.log(depth[0.0])[moved]), atol=2e-5)
    save_model(tmp_path / "m", model, {"refine_strength": 0.3})
    assert DepthEstimator.from_checkpoint(tmp_path / "m").refine_strength == 0.3
    save_model(tmp_path / "bad", model, {"refine_strength": "half"})
    with pytest.raises(InputError, match="refine_strength must be a number"):
        DepthEstimator.from_checkpoint(tmp_path / "bad")
    with pytest.raises(InputError, match=r"in \[0, 1\]"):
        DepthEstimator(model, refine_strength=1.5)


def test_refine_strength_near_rises_next_to_a_return_on_the_pixel_row(tmp_path):
    """strength_map: refine_strength_near at a return's row neighbours, refine_strength far from any, the
    exp(-d / (NEAR_REACH_SPACINGS x point spacing)) blend between; the estimator applies it per pixel."""
    from mf_core.lidar_prior import NEAR_REACH_SPACINGS, lidar_prior, strength_map
    from mf_core.model import build_model
    from mf_core.sparse_fill import point_spacing
    from mf_training.eval.synthetic import default_camera, synthetic_sample

    mask = torch.zeros(1, 1, 40, 60, dtype=torch.bool)
    mask[0, 0, 10, 5:55:5] = True  # one scan line, a return every 5 px
    mask[0, 0, 30, 5:55:5] = True  # and another 20 rows below: 20 returns over a 21 x 46 box
    assert float(point_spacing(mask)) == pytest.approx(math.sqrt(21 * 46 / 20))
    prior = lidar_prior(torch.zeros(1, 3, 40, 60), torch.zeros(1, 1, 40, 60), mask)
    strength = strength_map(prior, 0.2, 1.0)  # (1, 1, 40, 60)
    reach = NEAR_REACH_SPACINGS * math.sqrt(21 * 46 / 20)
    assert float(strength[0, 0, 10, 7]) == pytest.approx(0.2 + 0.8 * math.exp(-2 / reach))  # 2 px from a return
    assert float(strength[0, 0, 20, 7]) == pytest.approx(0.2)  # between the lines: no return on its row
    assert strength_map(prior, 0.3, None) == 0.3 and strength_map(prior, 0.3, 0.3) == 0.3  # uniform

    sample = synthetic_sample("s", default_camera(200, 150), seed=3)
    torch.manual_seed(0)  # the weights, not the order the tests ran in, decide the values
    model = build_model("MF-XS", depth_conditioned=True, refine_head=True, patch_size=16)
    torch.nn.init.normal_(model.refine.out.weight, std=0.01)
    save_model(tmp_path / "m", model, {"refine_strength": 0.2, "refine_strength_near": 1.0})
    near = DepthEstimator.from_checkpoint(tmp_path / "m", processing_size=96)
    assert (near.refine_strength, near.refine_strength_near) == (0.2, 1.0)
    depth = {s: DepthEstimator(model, processing_size=96, refine_strength=s).predict(
        sample.image, sample.sparse_depth, "conditioned").depth for s in (0.2, 1.0)}
    blended = near.predict(sample.image, sample.sparse_depth, "conditioned").depth
    log = {k: np.log(v) for k, v in (*depth.items(), ("near", blended))}
    points = torch.from_numpy(sample.sparse_depth > 0)[None, None]  # the native sweep: where the map is made
    native = lidar_prior(torch.zeros(1, 3, *points.shape[-2:]), torch.zeros(points.shape), points)
    share = ((strength_map(native, 0.2, 1.0) - 0.2) / 0.8)[0, 0].numpy()  # log depth is linear in the strength
    np.testing.assert_allclose(log["near"] - log[0.2], share * (log[1.0] - log[0.2]), atol=2e-5)
    moved = np.abs(log[1.0] - log[0.2]) > 1e-4
    assert moved.sum() > 1000 and share[moved].max() > 0.5 and share[moved].min() < 0.01  # both ends occur
    save_model(tmp_path / "bad", model, {"refine_strength_near": "most"})
    with pytest.raises(InputError, match="refine_strength_near must be a number"):
        DepthEstimator.from_checkpoint(tmp_path / "bad")


def test_the_refinement_head_runs_at_the_refine_size(tmp_path):
    """refine_size: the transformer runs at the processing size, the head at the refine size (never above
    the input's), and the composition at the input's; without one the head runs at the processing size,
    where the model's own forward pass runs it (the terms it returns are the ones composed)."""
    import torch.nn.functional as F

    from mf_core.frame_codec import depth_tensor, encode_lidar, image_tensor
    from mf_core.frame_network import refine_native
    from mf_core.lidar_prior import compose, lidar_prior
    from mf_core.model import build_model
    from mf_core.resize import resize_image, resize_sparse_depth
    from mf_training.eval.synthetic import default_camera, synthetic_sample

    def up(x: torch.Tensor) -> torch.Tensor:  # to the input's 150x200
        return F.interpolate(x, size=(150, 200), mode="bilinear", align_corners=False)

    sample = synthetic_sample("s", default_camera(200, 150), seed=4)
    torch.manual_seed(0)  # the weights, not the order the tests ran in, decide the values
    model = build_model("MF-XS", depth_conditioned=True, refine_head=True, patch_size=16).eval()
    torch.nn.init.normal_(model.refine.out.weight, std=0.05)
    image, sparse = sample.image, sample.sparse_depth

    def predict(refine_size: int | None) -> np.ndarray:
        estimator = DepthEstimator(model, processing_size=96, refine_size=refine_size)
        return estimator.predict(image, sparse, "conditioned").depth

    # The model's own pass at 96x80 (the head inside it) and, by hand, its head at 200x150 and at 120x90.
    small_image = image_tensor(resize_image(image, 96, 80))[None]
    lidar = encode_lidar(depth_tensor(resize_sparse_depth(sparse, 96, 80)))
    with torch.no_grad():
        noise = torch.randn(1, 1, 80, 96, generator=torch.Generator().manual_seed(0))  # as predict draws it
        out = model(model.encode_image(small_image), noise, torch.zeros(1), torch.ones(1), sparse_depth=lidar.depth,
                    sparse_mask=lidar.mask)
        alone = model(model.encode_image(small_image), noise, torch.zeros(1), torch.ones(1), sparse_depth=lidar.depth,
                      sparse_mask=lidar.mask, refine=False)  # the transformer alone: what the frame network runs
        assert alone.refine_terms is None
        torch.testing.assert_close(alone.transformer_log_depth, out.transformer_log_depth)
        native_image, native_sparse = image_tensor(image)[None], depth_tensor(sparse)
        scale = lidar.scale.view(-1, 1, 1, 1)
        mask = native_sparse > 0
        prior = lidar_prior(native_image, torch.where(mask, (native_sparse / scale).clamp(min=1e-6).log(), 0.0), mask)
        weights = model.refine.selection_weights
        at_processing = scale * compose(prior, up(out.refine_terms), up(out.transformer_log_depth), *weights).exp()
        at_native = refine_native(model, 1.0, None, native_image, native_sparse, native_image, native_sparse,
                                  out.transformer_log_depth, lidar.scale)
        by_hand = scale * compose(prior, model.refine_terms(native_image, prior, up(out.transformer_log_depth)),
                                  up(out.transformer_log_depth), *weights).exp()
    np.testing.assert_allclose(at_native[0, 0].numpy(), by_hand[0, 0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(predict(None), at_processing[0, 0].numpy(), rtol=1e-4)
    np.testing.assert_allclose(predict(200), at_native[0, 0].numpy(), rtol=1e-4)
    np.testing.assert_array_equal(predict(400), predict(200))  # never above the input's own size
    moved = np.abs(np.log(predict(200)) - np.log(predict(None))) > 1e-3
    assert moved.mean() > 0.05  # the head at another scale draws another depth
    assert np.abs(np.log(predict(120)) - np.log(predict(200)))[moved].mean() > 1e-3  # 120x90: a third one
    save_model(tmp_path / "m", model, {"refine_size": 200})
    assert DepthEstimator.from_checkpoint(tmp_path / "m").refine_size == 200
    for bad in (0, "big", 1.5):
        save_model(tmp_path / "bad", model, {"refine_size": bad})
        with pytest.raises(InputError, match="refine_size must be a positive integer"):
            DepthEstimator.from_checkpoint(tmp_path / "bad")
    with pytest.raises(InputError, match="refine_size must be a positive integer"):
        DepthEstimator(model, refine_size=0)


def test_a_head_that_does_not_read_the_transformer_runs_without_it(tmp_path):
    """refine_reads_transformer false: the head reads the LiDAR fill where it would read the transformer's
    depth, so the conditioned output does not change with the transformer's weights (it is not run: the
    frame network skips it), and the model's own forward pass (training, validation) composes the same
    terms the estimator does. With the setting true the same perturbation moves the output."""
    import torch.nn.functional as F

    from mf_core.frame_codec import depth_tensor, encode_lidar, image_tensor
    from mf_core.lidar_prior import compose, lidar_prior
    from mf_core.model import build_model
    from mf_core.resize import resize_image, resize_sparse_depth
    from mf_training.eval.synthetic import default_camera, synthetic_sample

    sample = synthetic_sample("s", default_camera(200, 150), seed=5)
    image, sparse = sample.image, sample.sparse_depth

    def model_reading(reads: bool) -> torch.nn.Module:
        torch.manual_seed(0)
        model = random_model(std=0.02, depth_conditioned=True, refine_head=True, patch_size=16,
                             refine_reads_transformer=reads)
        torch.nn.init.normal_(model.refine.out.weight, std=0.05)  # a head that moves the depth
        return model

    def perturbed(model: torch.nn.Module) -> torch.nn.Module:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if not name.startswith("refine."):
                    parameter.add_(torch.randn_like(parameter) * 0.05)
        return model

    def predict(model: torch.nn.Module) -> np.ndarray:
        return DepthEstimator(model, processing_size=96).predict(image, sparse, "conditioned").depth

    head_alone = predict(model_reading(False))
    np.testing.assert_array_equal(predict(perturbed(model_reading(False))), head_alone)
    reading = predict(model_reading(True))
    assert np.abs(np.log(predict(perturbed(model_reading(True)))) - np.log(reading)).max() > 1e-3
    assert np.abs(np.log(head_alone) - np.log(reading)).max() > 1e-3  # the head's input differs

    # The model's own pass at the processing size composes the terms the estimator composes at 200x150.
    model = model_reading(False)
    lidar = encode_lidar(depth_tensor(resize_sparse_depth(sparse, 96, 80)))
    with torch.no_grad():
        out = model(image_tensor(resize_image(image, 96, 80))[None], torch.randn(1, 1, 80, 96), torch.zeros(1),
                    torch.ones(1), sparse_depth=lidar.depth, sparse_mask=lidar.mask)
        native_image, native_sparse = image_tensor(image)[None], depth_tensor(sparse)
        scale, mask = lidar.scale.view(-1, 1, 1, 1), native_sparse > 0
        prior = lidar_prior(native_image, torch.where(mask, (native_sparse / scale).clamp(min=1e-6).log(), 0.0), mask)
        terms = F.interpolate(out.refine_terms, size=(150, 200), mode="bilinear", align_corners=False)
        by_hand = scale * compose(prior, terms, prior.fill, *model.refine.selection_weights).exp()
    np.testing.assert_allclose(head_alone, by_hand[0, 0].numpy(), rtol=1e-4)
    save_model(tmp_path / "m", model)
    np.testing.assert_array_equal(DepthEstimator.from_checkpoint(tmp_path / "m", processing_size=96).predict(
        image, sparse, "conditioned").depth, head_alone)
    with pytest.raises(InputError, match="needs refine_head"):
        build_model("MF-XS", depth_conditioned=True, refine_reads_transformer=False)


def test_from_checkpoint_matches_the_in_memory_model(tmp_path, estimator, image):
    save_model(tmp_path / "ckpt", estimator.model)
    loaded = DepthEstimator.from_checkpoint(tmp_path / "ckpt")
    np.testing.assert_allclose(loaded.predict(image, mode="i2d").depth, estimator.predict(image, mode="i2d").depth,
                               rtol=1e-5)


def test_input_errors(estimator, image):
    sparse = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    cases = [
        ((image.astype(np.float32),), {}, "uint8 RGB"),
        ((image[..., 0],), {}, r"\(H, W, 3\)"),
        ((image, sparse[:, :-1]), {}, "matching the image"),
        ((image,), {"mode": "guided"}, "needs sparse_depth"),
        ((image, sparse), {}, "too few LiDAR points"),
        ((image,), {"mode": "depth"}, "unknown mode"),
        ((image,), {"mode": "i2d", "steps": 0}, "steps must be"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            estimator.predict(*args, **kwargs)
