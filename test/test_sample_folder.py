"""Sample folders: exact round trip (depth quantised to 1/256 m) and bad-input errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from training.data.sample import Sample
from training.data.sample_folder import (
    MAX_DEPTH_M,
    SampleFolder,
    SampleFolderWriter,
    decode_depth,
    encode_depth,
    write_sample_folder,
)


def make_sample(name: str, seed: int, with_gt: bool = True, h: int = 24, w: int = 32) -> Sample:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    sparse = np.zeros((h, w), np.float32)
    idx = rng.choice(h * w, 40, replace=False)
    sparse.flat[idx] = rng.uniform(0.5, 80.0, 40)
    gt = rng.uniform(0.5, 80.0, (h, w)).astype(np.float32) if with_gt else None
    if gt is not None:
        gt[:3] = 0  # invalid rows
    camera = PinholeCamera(w, h, 30.5, 31.25, 15.5, 11.75, "plumb_bob", (0.1, -0.02, 0.001, 0.0, 0.003))
    return Sample(name, image, sparse, camera, 1_700_000_000_123_456_789 + seed, gt)


def test_round_trip_is_exact_up_to_depth_quantisation(tmp_path):
    samples = [make_sample("a000", 0), make_sample("a001", 1, with_gt=False)]
    writer = write_sample_folder(tmp_path, samples)
    assert writer.written == 2 and writer.clipped_pixels == 0
    folder = SampleFolder(tmp_path)
    assert len(folder) == 2 and folder.names == ["a000", "a001"]
    for original, back in zip(samples, folder, strict=True):
        assert back.name == original.name and back.stamp_ns == original.stamp_ns
        assert np.array_equal(back.image, original.image)
        assert back.camera == original.camera
        expected = np.round(original.sparse_depth * 256) / 256
        assert np.array_equal(back.sparse_depth > 0, original.sparse_depth > 0)
        assert np.abs(back.sparse_depth - expected).max() < 1e-6
        assert np.abs(back.sparse_depth - original.sparse_depth).max() <= 0.5 / 256 + 1e-6
    assert folder[0].gt_depth is not None and folder[1].gt_depth is None
    assert np.abs(folder[0].gt_depth - samples[0].gt_depth).max() <= 0.5 / 256 + 1e-6
    assert not list(tmp_path.glob(".*tmp"))  # no temporaries left behind


def test_jpeg_images_are_read_back(tmp_path):
    sample = make_sample("j", 3)
    SampleFolderWriter(tmp_path, image_format="jpg").write(sample)
    assert (tmp_path / "j_rgb.jpg").exists()
    back = SampleFolder(tmp_path)[0]
    assert back.image.shape == sample.image.shape
    assert np.array_equal(back.sparse_depth > 0, sample.sparse_depth > 0)


def test_far_depth_is_clipped_and_counted_never_wrapped():
    depth = np.array([[0.0, 10.0, 255.99, 300.0, 1e-4]], np.float32)
    codes, clipped = encode_depth(depth)
    assert clipped == 1
    assert codes.tolist() == [[0, 2560, 65533, 65535, 1]]
    back = decode_depth(codes)
    assert back[0, 3] == pytest.approx(MAX_DEPTH_M) and back[0, 4] > 0


def test_missing_file_names_the_file(tmp_path):
    write_sample_folder(tmp_path, [make_sample("f1", 0)])
    (tmp_path / "f1_sparse.png").unlink()
    with pytest.raises(InputError, match=r"f1_sparse\.png"):
        SampleFolder(tmp_path)


def test_eight_bit_depth_png_is_rejected(tmp_path):
    write_sample_folder(tmp_path, [make_sample("f2", 0)])
    cv2.imwrite(str(tmp_path / "f2_sparse.png"), np.zeros((24, 32), np.uint8))
    with pytest.raises(InputError, match=r"f2_sparse\.png.*16-bit"):
        SampleFolder(tmp_path)[0]


def test_size_mismatch_is_rejected(tmp_path):
    write_sample_folder(tmp_path, [make_sample("f3", 0)])
    cv2.imwrite(str(tmp_path / "f3_gt.png"), np.zeros((12, 32), np.uint16))
    with pytest.raises(InputError, match=r"f3_gt\.png is 32x12"):
        SampleFolder(tmp_path)[0]
    calib = json.loads((tmp_path / "f3_calib.json").read_text())
    calib["width"] = 64
    (tmp_path / "f3_calib.json").write_text(json.dumps(calib))
    with pytest.raises(InputError, match="64x24"):
        SampleFolder(tmp_path)[0]


def test_empty_or_missing_folder_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no samples"):
        SampleFolder(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        SampleFolder(tmp_path / "nope")


def test_calib_without_intrinsics_is_input_error(tmp_path):
    write_sample_folder(tmp_path, [make_sample("f4", 0)])
    (tmp_path / "f4_calib.json").write_text(json.dumps({"fx": 10.0}))
    with pytest.raises(InputError, match=r"f4_calib\.json.*fy, cx, cy"):
        SampleFolder(tmp_path)[0]
