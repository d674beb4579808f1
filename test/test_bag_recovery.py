"""mf bag recover on bad input: clear errors, nothing written where it was not asked."""

from __future__ import annotations

from mf_training.cli import main as mf_main


def test_bad_inputs_are_clear_errors(tmp_path, capsys):
    garbage = tmp_path / "garbage.mcap"
    garbage.write_bytes(b"not an mcap file at all")
    assert mf_main(["bag", "recover", str(garbage), "--out", str(tmp_path / "a")]) == 2
    assert "no complete message" in capsys.readouterr().err and not (tmp_path / "a").exists()
    empty = tmp_path / "empty_bag"
    empty.mkdir()
    assert mf_main(["bag", "recover", str(empty), "--out", str(tmp_path / "b")]) == 2
    assert "holding one" in capsys.readouterr().err and not (tmp_path / "b").exists()
    bag = tmp_path / "bag"
    assert mf_main(["sim", "--out", str(bag), "--frames", "2", "--width", "80", "--height", "64"]) == 0
    assert mf_main(["bag", "recover", str(bag), "--out", str(bag / "inside")]) == 2
    assert "outside" in capsys.readouterr().err and not (bag / "inside").exists()


def test_a_closed_bag_recovers_to_the_same_messages(tmp_path):
    from mf_ros.bags import read_messages

    bag = tmp_path / "bag"
    assert mf_main(["sim", "--out", str(bag), "--frames", "2", "--width", "80", "--height", "64"]) == 0
    assert mf_main(["bag", "recover", str(bag), "--out", str(tmp_path / "copy")]) == 0
    original = [(m.topic, m.stamp_ns, bytes(m.raw)) for m in read_messages(bag, decode=False)]
    copied = [(m.topic, m.stamp_ns, bytes(m.raw)) for m in read_messages(tmp_path / "copy", decode=False)]
    assert sorted(original) == sorted(copied) and len(original) > 6
