"""Jump-flooding nearest fill against scipy's exact Euclidean distance transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from mf_core.errors import InputError
from mf_core.sparse_fill import nearest_fill


def test_fill_matches_exact_nearest_distance():
    generator = torch.Generator().manual_seed(0)
    values = torch.rand(3, 1, 61, 83, generator=generator) * 50 + 1
    mask = torch.rand(3, 1, 61, 83, generator=generator) < torch.tensor([0.002, 0.03, 0.3]).view(3, 1, 1, 1)
    filled, has_seed = nearest_fill(values, mask)
    assert has_seed.all()
    torch.testing.assert_close(filled[mask], values[mask])  # valid pixels untouched
    for b in range(3):
        m = mask[b, 0].numpy()
        exact_distance = ndimage.distance_transform_edt(~m)  # (H, W) to the nearest valid pixel
        # Distance from each pixel to the seed whose value it took (found by value: values are unique).
        seeds = {float(v): (r, c) for (r, c), v in zip(np.argwhere(m), values[b, 0].numpy()[m], strict=True)}
        picked = np.array([seeds[float(v)] for v in filled[b, 0].numpy().ravel()]).reshape(61, 83, 2)
        rows, cols = np.indices(m.shape)
        picked_distance = np.hypot(picked[..., 0] - rows, picked[..., 1] - cols)
        assert np.mean(picked_distance <= exact_distance + 1e-6) > 0.97  # exact almost everywhere
        assert np.max(picked_distance - exact_distance) < 2.5  # and never far off


def test_samples_without_points_fill_with_zeros():
    values = torch.rand(2, 1, 8, 8)
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[1, 0, 3, 5] = True
    filled, has_seed = nearest_fill(values, mask)
    assert has_seed.tolist() == [False, True]
    assert torch.all(filled[0] == 0)
    assert torch.all(filled[1] == values[1, 0, 3, 5])


def test_bad_shapes_raise_input_error():
    with pytest.raises(InputError, match=r"\(B, 1, H, W\)"):
        nearest_fill(torch.rand(1, 2, 4, 4), torch.ones(1, 2, 4, 4, dtype=torch.bool))
