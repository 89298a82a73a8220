"""The embedded default catalog is byte-deterministic: regenerating it matches data.dvc."""

from fashionvlp.config import load_params
from fashionvlp.data.versioning import dir_md5, pinned_md5
from tests.conftest import REPO


def test_default_catalog_regenerates_to_the_pinned_hash(tmp_path):
    """The embedded default catalog is byte-deterministic: regenerating it matches data.dvc."""
    from fashionvlp.stages.data import synth

    params = load_params(REPO / "params.yaml", overrides=["data.synth.workers=2"])
    out = synth(params, tmp_path / "data")
    assert dir_md5(out) == pinned_md5(REPO / "data.dvc")
