import os
import shutil
from pathlib import Path

import pytest

from fashionvlp.env import quiet_offline

quiet_offline()

REPO = Path(__file__).resolve().parent.parent
TINY = ["data.synth.num_products=140", "data.synth.image_size=64", "data.synth.num_outfits=30",
        "data.synth.workers=1"]


@pytest.fixture(scope="session")
def tiny_catalog(tmp_path_factory) -> Path:
    """A 140-product synthetic catalog, generated once per session; copy it before modifying."""
    from fashionvlp.config import load_params
    from fashionvlp.stages.data import synth

    out = tmp_path_factory.mktemp("tiny") / "catalog"
    return synth(load_params(REPO / "params.yaml", overrides=TINY), out)


@pytest.fixture
def catalog_copy(tiny_catalog, tmp_path) -> Path:
    dst = tmp_path / "catalog"
    shutil.copytree(tiny_catalog, dst)
    return dst


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
