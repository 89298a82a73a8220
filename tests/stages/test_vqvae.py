"""The VQ-VAE stage at catalog scale: it trains on a bounded draw of images and labels every one."""

import json

import numpy as np

from fashionvlp.data.patch_labels import read_patch_labels
from fashionvlp.stages.vqvae import train_vqvae
from tests.conftest import tiny_params


def test_trains_on_a_bounded_draw_and_labels_every_image(tiny_catalog, tiny_patch_labels, tmp_path):
    everything = read_patch_labels(tiny_patch_labels)
    result = train_vqvae(tiny_params(tmp_path, "vqvae.train_images=40", "vqvae.loader_workers=1"), tiny_catalog)
    metrics = json.loads((result.model_dir / "metrics.json").read_text())
    assert metrics["train_images"] == 40 < metrics["num_images"] == len(everything.row_of)
    drawn = read_patch_labels(result.labels_dir)
    assert drawn.row_of == everything.row_of and drawn.codes.shape == everything.codes.shape
    assert len(np.unique(drawn.codes)) > 1 and np.isfinite(metrics["reconstruction_mse"])
