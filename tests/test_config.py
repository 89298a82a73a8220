import pytest

from fashionvlp.config import ConfigError, load_params
from tests.conftest import REPO


def test_defaults_load_and_resolve_paths():
    p = load_params(REPO / "params.yaml")
    assert p.data.synth.num_products == 5600
    assert p.catalog_dir == REPO / "data"
    assert p.tracking_uri == f"sqlite:///{REPO}/mlflow/mlflow.db"
    assert p.artifact_location.startswith("file://")


def test_set_overrides_any_value_and_preset_overlays():
    p = load_params(REPO / "params.yaml", presets=["small-catalog"], overrides=["data.synth.num_products=500",
                                                                       "validation.title_length=[1, 10]"])
    assert p.data.synth.num_products == 500
    assert p.data.synth.image_size == 64            # from the small-catalog preset
    assert p.validation.title_length == (1, 10)


@pytest.mark.parametrize("override, key", [
    ("data.synth.num_products=lots", "data.synth.num_products"),
    ("data.synth.splits.train=0.9", "data.synth.splits"),
    ("data.synth.num_product=5", "data.synth.num_product"),
    ("validation.image_max_side=[1]", "validation.image_max_side"),
    ("finetune.tasks=[xmr, segmentation]", "finetune.tasks.1"),
    ("finetune.tgir.batch_size=1", "finetune.tgir.batch_size"),
])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as exc:
        load_params(REPO / "params.yaml", overrides=[override])
    assert key in str(exc.value)


def test_wrong_type_in_params_yaml(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text((REPO / "params.yaml").read_text().replace("image_size: 128", "image_size: big"))
    with pytest.raises(ConfigError, match=r"data\.synth\.image_size.*'big'"):
        load_params(bad)


def test_unknown_preset_and_malformed_override():
    with pytest.raises(ConfigError, match="unknown preset 'huge'.*tiny"):
        load_params(REPO / "params.yaml", presets=["huge"])
    with pytest.raises(ConfigError, match="key.path=value"):
        load_params(REPO / "params.yaml", overrides=["no-equals-sign"])
