"""TAEF2 as the image tokenizer: the module reproduces the published weights' autoencoder, and the
tokenizer standardises its latents with FLUX.2's statistics exactly as documented."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import flux2_statistics_folder, random_taef2
from safetensors.torch import save_file

from mf_core.errors import InputError
from mf_core.model.taef2 import DECODER_FILE, load_taef2
from mf_core.model.vae import VaeTokenizer
from mf_training.data.real_sets import data_root

SHARED_TAEF2 = Path(__file__).resolve().parents[2] / "shared" / "weights" / "taef2"


@pytest.mark.skipif(not SHARED_TAEF2.is_dir(), reason="shared/weights/taef2 not present")
def test_the_published_weights_round_trip_a_real_frame():
    frames = sorted((data_root() / "dgp" / "scene_01" / "rgb" / "CAMERA_01").glob("*.jpg"))
    if not frames:
        pytest.skip("shared/data/dgp not present")
    import cv2

    image = cv2.cvtColor(cv2.imread(str(frames[0])), cv2.COLOR_BGR2RGB)[500:692, 800:1056]  # (192, 256, 3)
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    encoder, decoder = load_taef2(SHARED_TAEF2)
    with torch.no_grad():
        latents = encoder(x)
        back = decoder(latents).clamp(0.0, 1.0)
    assert latents.shape == (1, 32, 24, 32)
    psnr = 10 * np.log10(1.0 / float(F.mse_loss(back, x)))
    assert psnr > 28.0, psnr  # 31.2 dB measured on this crop (32.8 on a 512x384 one); without the pools 17.5


def test_a_tokenizer_with_flux2_statistics_standardises_and_inverts(tmp_path):
    folder = random_taef2(tmp_path / "taef2")
    mean, std = flux2_statistics_folder(tmp_path / "vae")
    tokenizer = VaeTokenizer(folder, tmp_path / "vae")
    assert (tokenizer.channels, tokenizer.factor) == (32, 8)
    image = torch.rand(1, 3, 32, 48) * 2 - 1
    encoder, decoder = load_taef2(folder)
    raw = encoder((image + 1) / 2)  # (1, 32, 4, 6)
    # Folded channel (c, i, j) of FLUX.2's 2x2 packing sits at row 2y + i, column 2x + j.
    mean_map = F.pixel_shuffle(mean.view(1, -1, 1, 1).expand(1, 128, 2, 3), 2)
    std_map = F.pixel_shuffle(std.view(1, -1, 1, 1).expand(1, 128, 2, 3), 2)
    tokens = tokenizer.encode(image)
    torch.testing.assert_close(tokens, (raw - mean_map) / std_map)
    assert tokens[0, 0, 0, 1] == pytest.approx(float((raw[0, 0, 0, 1] - mean[1]) / std[1]), rel=1e-5)
    torch.testing.assert_close(tokenizer.decode(tokens), decoder(raw) * 2 - 1, rtol=1e-4, atol=1e-5)
    raw_tokenizer = VaeTokenizer(folder)  # no statistics: raw latents
    torch.testing.assert_close(raw_tokenizer.encode(image), raw)


def test_bad_taef2_folders_are_clear_errors(tmp_path):
    folder = random_taef2(tmp_path / "taef2")
    (folder / DECODER_FILE).unlink()
    with pytest.raises(InputError, match=DECODER_FILE):
        load_taef2(folder)
    save_file({"0.weight": torch.zeros(1)}, str(folder / DECODER_FILE))
    with pytest.raises(InputError, match="is not a TAEF2 decoder"):
        load_taef2(folder)
    flux2_statistics_folder(tmp_path / "vae", channels=16)
    with pytest.raises(InputError, match=r"not a FLUX\.2 VAE"):
        VaeTokenizer(random_taef2(tmp_path / "good"), tmp_path / "vae")
