"""Data work gives the same result in this process, on a local pool and on a real Dask cluster."""

import json

import pytest

from fashionvlp.config import ValidationConfig
from fashionvlp.data.converters.fashiongen import convert_fashiongen
from fashionvlp.data.validation import validate_catalog
from fashionvlp.data.versioning import dir_md5
from tests.data.test_converters import _fashiongen_h5


@pytest.fixture(scope="module")
def dask_address():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, protocol="tcp",
                      dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_validation_decodes_images_alike_here_on_a_pool_and_on_dask(catalog_copy, tmp_path, dask_address):
    rows = sorted(p for p in (catalog_copy / "images").rglob("*.jpg"))
    rows[3].write_bytes(b"garbage")
    reports = {}
    for name, cfg in {"here": ValidationConfig(workers=1), "pool": ValidationConfig(workers=2),
                      "dask": ValidationConfig(dask_address=dask_address)}.items():
        result = validate_catalog(catalog_copy, tmp_path / name, cfg)
        reports[name] = json.loads(result.report_json.read_text())
        assert not result.success
    assert reports["here"] == reports["pool"] == reports["dask"]
    (failure,) = [f for f in reports["here"]["failures"] if f["column"] == "decodes"]
    assert [r["path"] for r in failure["rows"]] == [rows[3].relative_to(catalog_copy).as_posix()]


def test_fashiongen_encodes_alike_here_and_on_dask(tmp_path, dask_address):
    train = _fashiongen_h5(tmp_path / "train.h5", [(7, "Navy dress", "DRESSES", "SHORT DRESSES"),
                                                   (7, "Navy dress", "DRESSES", "SHORT DRESSES"),
                                                   (9, "Black tote", "BAGS", "TOTE BAGS")])
    here = convert_fashiongen({"train": train}, tmp_path / "here", workers=1)
    there = convert_fashiongen({"train": train}, tmp_path / "there", dask_address=dask_address)
    manifest = json.loads((there / "catalog.json").read_text())
    assert manifest["counts"]["images"] == 3
    assert dir_md5(here) == dir_md5(there)
