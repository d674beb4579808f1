"""Depth codec (model space) and resizing of images, dense and sparse depth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mf_core.camera import PinholeCamera
from mf_core.depth_codec import decode_depth, encode_depth
from mf_core.errors import InputError
from mf_core.resize import processing_shape, resize_dense_depth, resize_image, resize_sparse_depth


def _depth_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    depth = torch.rand((2, 1, 6, 7), generator=generator) * 80 + 0.5  # (2, 1, 6, 7) metres
    valid = torch.rand((2, 1, 6, 7), generator=generator) > 0.3
    return torch.where(valid, depth, 0.0), valid


def test_encode_range_unit_mean_and_round_trip():
    depth, valid = _depth_batch()
    encoded, scale = encode_depth(depth, valid)
    means = [depth[i][valid[i]].mean().item() for i in range(2)]
    assert scale.tolist() == pytest.approx(means, rel=1e-6)
    assert encoded.min() >= -1 and encoded.max() < 1
    assert torch.all(encoded[~valid] == 0)
    decoded = decode_depth(encoded, scale)
    torch.testing.assert_close(decoded[valid], depth[valid], rtol=1e-5, atol=1e-5)


def test_contraction_values():
    depth = torch.tensor([0.5, 1.0, 2.0, 4.0]).view(1, 1, 1, 4)
    encoded, _ = encode_depth(depth, scale=torch.ones(1))
    # identity up to 1, then 2 - 1/d; minus 1.
    torch.testing.assert_close(encoded.flatten(), torch.tensor([-0.5, 0.0, 0.5, 0.75]))


def test_decode_clamps_raw_network_outputs():
    decoded = decode_depth(torch.tensor([-3.0, 5.0]).view(1, 1, 1, 2))
    assert decoded[0, 0, 0, 0] == 0
    assert torch.isfinite(decoded).all() and decoded[0, 0, 0, 1] == pytest.approx(1000, rel=1e-3)


def test_sample_without_valid_pixels_is_an_error():
    depth, valid = _depth_batch()
    valid[1] = False
    with pytest.raises(InputError, match=r"sample\(s\) \[1\] have no valid depth"):
        encode_depth(depth, valid)


def test_invalid_values_at_valid_pixels_are_an_error():
    depth = torch.ones(1, 1, 2, 2)
    depth[0, 0, 0, 0] = -1
    with pytest.raises(InputError, match="non-positive"):
        encode_depth(depth, torch.ones(1, 1, 2, 2, dtype=torch.bool))


def _sparse(height: int, width: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    flat = np.zeros(height * width, dtype=np.float32)
    flat[rng.choice(height * width, count, replace=False)] = rng.uniform(1, 50, count)
    return flat.reshape(height, width)


def test_sparse_upsampling_keeps_every_point_and_value():
    sparse = _sparse(20, 30, 60, seed=1)
    up = resize_sparse_depth(sparse, 75, 50)
    assert np.count_nonzero(up) == 60
    assert np.array_equal(np.sort(up[up > 0]), np.sort(sparse[sparse > 0]))
    # Each point sits at its scaled pixel centre.
    rows, cols = np.nonzero(sparse)
    new_rows, new_cols = ((rows + 0.5) * 2.5).astype(int), ((cols + 0.5) * 2.5).astype(int)
    assert np.array_equal(up[new_rows, new_cols], sparse[rows, cols])


def test_sparse_downsampling_takes_the_nearest_point_per_footprint():
    sparse = np.zeros((4, 4), dtype=np.float32)
    sparse[0, 0], sparse[1, 1], sparse[0, 1] = 9.0, 3.0, 7.0  # one 2x2 footprint
    sparse[3, 3] = 12.5  # alone in its footprint
    down = resize_sparse_depth(sparse, 2, 2)
    assert down.tolist() == [[3.0, 0.0], [0.0, 12.5]]
    # Up then down again: every point returns to its own footprint, count and values exact.
    spread = _sparse(10, 10, 10, seed=2)
    assert np.array_equal(resize_sparse_depth(resize_sparse_depth(spread, 40, 40), 10, 10), spread)


def test_sparse_resize_matches_resized_camera_projection():
    camera = PinholeCamera(64, 48, 50.0, 50.0, 31.5, 23.5)
    point = np.array([0.3, -0.2, 2.0])
    u, v = (camera.K @ point)[:2] / point[2]
    sparse = np.zeros((48, 64), dtype=np.float32)
    sparse[round(v), round(u)] = 2.0
    small = camera.resized(16, 12)
    u2, v2 = (small.K @ point)[:2] / point[2]
    assert resize_sparse_depth(sparse, 16, 12)[round(v2), round(u2)] == 2.0


def test_dense_masked_average_does_not_bleed_holes():
    depth = np.full((8, 8), 4.0, dtype=np.float32)
    depth[:, :4] = 0.0  # left half has no value
    depth[0, 4] = 8.0
    down = resize_dense_depth(depth, 4, 4)
    assert np.all(down[:, :2] == 0)
    assert down[1:, 2:] == pytest.approx(4.0)
    assert down[0, 2] == pytest.approx((8 + 4 + 4 + 4) / 4)
    nearest = resize_dense_depth(depth, 16, 16, method="nearest")
    assert set(np.unique(nearest)) == {0.0, 4.0, 8.0}


def test_image_resize_and_processing_shape():
    image = np.random.default_rng(0).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    assert resize_image(image, 25, 18).shape == (18, 25, 3)
    assert processing_shape(37, 50, 8) == (40, 48)
    assert processing_shape(375, 1242, 16, 640) == (192, 640)
    assert processing_shape(10, 10, 16, (100, 33)) == (96, 32)
    with pytest.raises(InputError, match="processing size"):
        processing_shape(10, 10, 8, 0)
