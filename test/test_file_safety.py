"""Nothing the package writes or deletes leaves the folder it was told to use, whatever the data says."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_core.files import atomic_write, remove_tree, safe_file_name
from mf_training.cli import main
from mf_training.data.sample import Sample
from mf_training.data.sample_folder import SampleFolderWriter
from mf_training.train.config import SourceConfig
from mf_training.train.datasets import generate_sim_bag


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root`` with its bytes (files) or link target: a snapshot to compare."""
    entries: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            entries[key] = "-> " + os.readlink(path)
        elif path.is_file():
            entries[key] = path.read_bytes()
        else:
            entries[key] = "dir"
    return entries


def _outside(snapshot: dict, out: str) -> dict:
    return {k: v for k, v in snapshot.items() if k != out and not k.startswith(out + "/")}


@pytest.mark.parametrize("name", ["scene_01_sample0_CAMERA_05", "frame-000000", "a b", "x..y", "Ü"])
def test_safe_file_name_keeps_ordinary_names(name):
    assert safe_file_name(name, "sample name") == name


@pytest.mark.parametrize("name", ["", ".", "..", "../evil", "a/b", "a\\b", ".hidden", "a\x00b", "a\nb", "x" * 201, 7])
def test_safe_file_name_refuses_names_that_could_leave_the_folder(name):
    with pytest.raises(InputError, match="sample name"):
        safe_file_name(name, "sample name")


def test_a_sample_named_like_a_path_is_refused():
    camera = PinholeCamera(8, 8, 10.0, 10.0, 3.5, 3.5)
    image, depth = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32)
    assert Sample("ok", image, depth, camera, 0).name == "ok"
    with pytest.raises(InputError, match=r"'\.\./\.\./x' cannot be used as a file name"):
        Sample("../../x", image, depth, camera, 0)


def _dgp_with_camera_named(shared_data: Path, tmp_path: Path, name: str) -> Path:
    scene = tmp_path / "data" / "scene_01"
    shutil.copytree(shared_data / "dgp" / "scene_01", scene)
    (calibration,) = (scene / "calibration").glob("*.json")
    calibration.write_text(calibration.read_text().replace('"CAMERA_01"', json.dumps(name)))
    return scene


@pytest.mark.parametrize("command", ["eval", "convert"])
def test_dgp_sensor_named_dot_dot_cannot_write_or_delete_outside_out(shared_data, tmp_path, capsys, command):
    scene = _dgp_with_camera_named(shared_data, tmp_path, "../../victim")
    victim = tmp_path / "victim"  # where a "../../" camera name would have put a bag or panels
    victim.mkdir()
    (victim / "metadata.yaml").write_text("precious")  # looks like a bag, so --overwrite would delete it
    out = tmp_path / "out" / "nested"
    before = _tree(tmp_path)
    args = (["eval", "--data", str(scene), "--baseline", "nearest", "--protocol", "lidar-holdout", "--out", str(out)]
            if command == "eval" else
            ["convert", "--source", "dgp", "--path", str(scene), "--out", str(out), "--overwrite"])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "sensor name '../../victim' cannot be used as a file name" in err and "rename it" in err
    assert _outside(_tree(tmp_path), "out") == _outside(before, "out")


def test_export_writes_through_fresh_temp_files_never_a_planted_symlink(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("s1_rgb.png", "s1_sparse.png", "s1_calib.json"):  # the old fixed temp names
        (out / f".{name}.tmp").symlink_to(outside)
    camera = PinholeCamera(8, 8, 10.0, 10.0, 3.5, 3.5)
    depth = np.zeros((8, 8), np.float32)
    depth[2, 3] = 4.0
    writer = SampleFolderWriter(out)
    writer.write(Sample("s1", np.full((8, 8, 3), 9, np.uint8), depth, camera, 5))
    assert outside.read_text() == "precious"
    assert json.loads((out / "s1_calib.json").read_text())["stamp_ns"] == 5
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "s1_calib.json", "s1_rgb.png", "s1_sparse.png"]
    assert len(list(out.glob(".*"))) == 3  # the planted links are left alone, and no temp file is left over


def test_atomic_write_leaves_no_temp_file_and_replaces_the_target(tmp_path):
    target = tmp_path / "a.json"
    atomic_write(target, b"1")
    atomic_write(target, b"2", durable=False)
    assert target.read_bytes() == b"2" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_remove_tree_deletes_only_real_folders_inside_the_root(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "a").mkdir(parents=True)
    elsewhere.mkdir()
    (root / "link").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(InputError, match="symlink"):
        remove_tree(root / "link", inside=root)
    with pytest.raises(InputError, match="not inside"):
        remove_tree(root / ".." / "elsewhere", inside=root)
    with pytest.raises(InputError, match="not inside"):
        remove_tree(root, inside=root)
    assert elsewhere.is_dir() and (root / "link").is_symlink()
    remove_tree(root / "a", inside=root)
    assert not (root / "a").exists()


def test_a_sim_source_that_names_a_path_is_refused_before_anything_is_created(tmp_path):
    with pytest.raises(InputError, match="must be one of street, indoor"):
        SourceConfig(path="sim:../../x/street")
    cache = tmp_path / "cache"
    config = tmp_path / "bad.yaml"
    config.write_text(f"model: {{name: MF-XS}}\ndata:\n  cache_dir: {cache}\n  sources:\n"
                      "    - {path: 'sim:../../x/street'}\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_sim_cache_generation_cleans_up_only_its_own_temp_folder(tmp_path):
    cache = tmp_path / "cache"
    source = SourceConfig(path="sim:street", frames=1, width=64, height=48, seed=3)
    planted = cache / "street_1f_64x48_seed3.tmp"  # the name the generator once used and rmtree'd
    planted.mkdir(parents=True)
    (planted / "keep").write_text("someone else's")
    bag = generate_sim_bag(source, cache)
    assert (bag / "metadata.yaml").is_file() and (planted / "keep").read_text() == "someone else's"
    assert sorted(p.name for p in cache.iterdir()) == ["street_1f_64x48_seed3", "street_1f_64x48_seed3.tmp"]
