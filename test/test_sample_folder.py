"""Sample folders: exact round trip (depth quantised to 1/256 m) and bad-input errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_training.data.sample import Sample
from mf_training.data.sample_folder import (
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


_GOOD_CALIB = {"width": 32, "height": 24, "fx": 30.5, "fy": 31.25, "cx": 15.5, "cy": 11.75, "stamp_ns": 5}


@pytest.mark.parametrize(("change", "message"), [
    ({"fx": "abc"}, "fx must be a finite number"),
    ({"fx": None}, "fx must be a finite number"),
    ({"fx": [1, 2]}, "fx must be a finite number"),
    ({"fx": True}, "fx must be a finite number"),
    ({"fx": 1e-300}, "field of view of 180 degrees"),
    ({"fy": 1e9}, "give the focal length in pixels"),
    ({"cx": float("nan")}, "cx must be a finite number"),
    ({"width": "wide"}, "width must be a positive whole number"),
    ({"width": 160.7}, "width must be a positive whole number"),
    ({"height": -24}, "height must be a positive whole number"),
    ({"distortion": "abc"}, "distortion must be a list of numbers"),
    ({"distortion": [0.1, float("nan"), 0, 0, 0]}, "coefficients must be finite"),
    ({"distortion_model": 5, "distortion": [0, 0, 0, 0, 0]}, "distortion_model must be a name"),
    ({"stamp_ns": "yesterday"}, "stamp_ns must be a whole number"),
    ({"stamp_ns": 1.5}, "stamp_ns must be a whole number"),
    ({"stamp_ns": -1}, "stamp_ns must be a whole number"),
])
def test_bad_calib_fields_are_input_errors_naming_the_file_and_field(tmp_path, change, message):
    write_sample_folder(tmp_path, [make_sample("f5", 0, with_gt=False)])
    (tmp_path / "f5_calib.json").write_text(json.dumps({**_GOOD_CALIB, **change}))
    with pytest.raises(InputError, match=message) as info:
        SampleFolder(tmp_path)[0]
    assert "f5_calib.json" in str(info.value)


def test_a_whole_number_width_written_as_a_float_is_accepted(tmp_path):
    write_sample_folder(tmp_path, [make_sample("f6", 0, with_gt=False)])
    (tmp_path / "f6_calib.json").write_text(json.dumps({**_GOOD_CALIB, "width": 32.0}))
    camera = SampleFolder(tmp_path)[0].camera
    assert camera.width == 32 and isinstance(camera.width, int)


def test_deeply_nested_calib_is_an_input_error(tmp_path):
    write_sample_folder(tmp_path, [make_sample("f7", 0, with_gt=False)])
    (tmp_path / "f7_calib.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="not valid JSON"):
        SampleFolder(tmp_path)[0]


def _fuzz_value(rng: np.random.Generator):
    """A random JSON value: numbers of every scale and sign, strings, nulls, bools, lists, objects."""
    kind = rng.integers(0, 8)
    if kind == 0:
        return float(rng.choice([0.0, -1.0, 1e-300, 1e300, 30.5, 1e6])) * float(rng.uniform(0.5, 2))
    if kind == 1:
        return int(rng.integers(-(2**40), 2**40))
    if kind == 2:
        return str(rng.choice(["", "abc", "32", "nan", "plumb_bob", "none"]))
    if kind == 3:
        return None
    if kind == 4:
        return bool(rng.integers(0, 2))
    if kind == 5:
        return [_fuzz_value(rng) for _ in range(rng.integers(0, 9))] if rng.uniform() < 0.7 else []
    if kind == 6:
        return {"a": 1}
    return int(rng.integers(1, 64))


def test_fuzzed_calib_json_never_raises_anything_but_input_error(tmp_path):
    write_sample_folder(tmp_path, [make_sample("fz", 0, with_gt=False)])
    calib_path = tmp_path / "fz_calib.json"
    rng = np.random.default_rng(1234)
    keys = [*_GOOD_CALIB, "distortion", "distortion_model"]
    accepted = 0
    for _ in range(300):
        calib = dict(_GOOD_CALIB)
        for key in rng.choice(keys, size=rng.integers(1, 4), replace=False):
            if rng.uniform() < 0.15:
                calib.pop(str(key), None)
            else:
                calib[str(key)] = _fuzz_value(rng)
        calib_path.write_text(json.dumps(calib))
        try:
            sample = SampleFolder(tmp_path)[0]
        except InputError:
            continue
        accepted += 1
        assert sample.camera.width == 32 and np.isfinite(sample.camera.K).all()
    assert 0 < accepted < 300  # the fuzzing reaches both outcomes


def test_an_image_whose_header_is_too_large_is_refused_before_decoding(tmp_path):
    from helpers import png_header_claiming

    write_sample_folder(tmp_path, [make_sample("big", 0, with_gt=False)])
    (tmp_path / "big_rgb.png").write_bytes(png_header_claiming(9000, 8000).tobytes())
    with pytest.raises(InputError, match=r"big_rgb\.png is 9000x8000, over the limit"):
        SampleFolder(tmp_path)[0]
