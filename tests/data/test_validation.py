import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq

from fashionvlp.config import ValidationConfig
from fashionvlp.data.catalog_io import PRODUCTS_SCHEMA
from fashionvlp.data.validation import validate_catalog


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_valid_catalog_passes_and_is_not_modified(tiny_catalog, tmp_path):
    before = _digest(tiny_catalog)
    result = validate_catalog(tiny_catalog, tmp_path / "report", ValidationConfig())
    assert result.success, result.failures
    assert _digest(tiny_catalog) == before
    assert json.loads((tmp_path / "report" / "summary.json").read_text())["success"] == 1


def test_broken_catalog_fails_with_rows_named(catalog_copy, tmp_path):
    rows = pq.read_table(catalog_copy / "products.parquet").to_pylist()
    rows[1]["product_id"] = rows[0]["product_id"]
    rows[2]["title"] = ""
    rows[3]["attributes"] = [("color", "teal")]
    rows[4]["subcategory"] = "ball gowns"
    rows[5]["split"] = "holdout"
    pq.write_table(pa.Table.from_pylist(rows, schema=PRODUCTS_SCHEMA), catalog_copy / "products.parquet")
    (catalog_copy / rows[6]["images"][0]["path"]).write_bytes(b"garbage")
    (catalog_copy / rows[7]["images"][0]["path"]).unlink()
    outfits = pq.read_table(catalog_copy / "outfits.parquet").to_pylist()
    outfits[0]["product_ids"][0] = "NOPE"
    pq.write_table(pa.Table.from_pylist(outfits, schema=pq.read_schema(catalog_copy / "outfits.parquet")),
                   catalog_copy / "outfits.parquet")
    before = _digest(catalog_copy)

    result = validate_catalog(catalog_copy, tmp_path / "report", ValidationConfig())
    assert not result.success
    assert _digest(catalog_copy) == before
    found = {(f["table"], str(f["column"])): f for f in result.failures}

    def ids(table, column, key="product_id"):
        return {r[key] for r in found[(table, column)]["rows"]}

    assert ids("products", "product_id") == {rows[0]["product_id"]}
    assert ids("products", "title") == {rows[2]["product_id"]}
    assert ids("attributes", "category_attribute_value") == {rows[3]["product_id"]}
    assert ids("products", "category_subcategory") == {rows[4]["product_id"]}
    assert ids("products", "split") == {rows[5]["product_id"]}
    assert ids("images", "decodes") == {rows[6]["product_id"], rows[7]["product_id"]}
    assert ids("images", "exists") == {rows[7]["product_id"]}
    assert ids("outfit_items", "product_id", "outfit_id") == {outfits[0]["outfit_id"]}
    md = result.report_md.read_text()
    assert "FAILED" in md and rows[2]["product_id"] in md


def test_cli_validate_exits_nonzero_with_report(catalog_copy, tmp_path):
    from typer.testing import CliRunner

    from fashionvlp.cli import app
    from tests.conftest import REPO

    rows = pq.read_table(catalog_copy / "products.parquet").to_pylist()
    rows[0]["title"] = ""
    pq.write_table(pa.Table.from_pylist(rows, schema=PRODUCTS_SCHEMA), catalog_copy / "products.parquet")
    res = CliRunner().invoke(app, ["data", "validate", "--params", str(REPO / "params.yaml"),
                                   "--catalog", str(catalog_copy), "--report-dir", str(tmp_path / "r")])
    assert res.exit_code == 1
    assert rows[0]["product_id"] in res.output and "report.md" in res.output
