"""`fashionvlp data import`: a shop's export as a catalog, its bad rows named, its taxonomy as the schema."""

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from fashionvlp.cli import app
from fashionvlp.data.catalog_import import REJECT_REPORT, import_catalog, load_mapping, load_taxonomy
from fashionvlp.data.catalog_io import CatalogError, read_catalog
from tests.conftest import REPO

TAXONOMY = {
    "attributes": {"color": {"values": {"blue": ["navy", "cobalt"], "red": ["burgundy"], "black": []}},
                   "material": {"visible": False, "values": {"cotton": [], "linen": []}}},
    "categories": {"Dresses": {"subcategories": ["Midi Dresses", "Maxi Dresses"], "attributes": ["color", "material"]},
                   "Bags": {"subcategories": ["Totes"], "attributes": ["color"]}},
}
MAPPING = {"columns": {"id": "SKU", "title": "Product Name", "description": "Long Description",
                       "category": "Department", "subcategory": "Product Type", "images": "Image Paths"},
           "attributes": {"columns": {"color": "Colour"}, "json": "Extra"},
           "split": {"val": 0.25, "test": 0.25, "seed": 7}}
HEADER = ["SKU", "Product Name", "Long Description", "Department", "Product Type", "Colour", "Extra", "Image Paths"]


def _row(sku, name="Wrap dress", dept="Dresses", kind="Midi Dresses", colour="Navy", extra='{"material": "Cotton"}',
         images=None):
    return [sku, name, f"{name}, lined. Dry clean only.", dept, kind, colour, extra, images or f"{sku}/front.jpg|{sku}/back.jpg"]


def _shop(tmp_path, rows, mapping=None):
    """A shop's export: a CSV with its own column names, images in folders per SKU, mapping and taxonomy."""
    images = tmp_path / "media"
    for row in rows:
        for rel in row[-1].split("|"):
            path = images / rel
            if ".." not in rel and "missing" not in rel:
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (96, 128), "navy").save(path)
    table = tmp_path / "export.csv"
    with table.open("w", newline="") as fh:
        csv.writer(fh).writerows([HEADER, *rows])
    (tmp_path / "mapping.yaml").write_text(yaml.safe_dump(mapping or MAPPING))
    (tmp_path / "taxonomy.yaml").write_text(yaml.safe_dump(TAXONOMY))
    return table, images


def _import(tmp_path, table, images, out="catalog", **kw):
    return import_catalog(table, images, load_mapping(tmp_path / "mapping.yaml"), load_taxonomy(tmp_path / "taxonomy.yaml"),
                          tmp_path / out, **kw)


GOOD = [_row(f"D{k:02d}", kind=("Midi Dresses", "Maxi Dresses")[k % 2]) for k in range(8)] + \
       [_row(f"B{k:02d}", "Canvas tote", "Bags", "Totes", "burgundy", "") for k in range(4)]


def test_a_shop_export_becomes_a_catalog_with_its_taxonomy_as_the_schema(tmp_path):
    table, images = _shop(tmp_path, GOOD)
    cat = read_catalog(_import(tmp_path, table, images))
    products = {p.product_id: p for p in cat.iter_products()}
    assert len(products) == 12
    d = products["D00"]
    assert d.attributes == {"color": "blue", "material": "cotton"}        # synonyms and case → the value
    assert [v.view for v in d.images] == ["front", "view1"] and d.description.startswith("Wrap dress, lined")
    assert products["B01"].attributes == {"color": "red"}
    # the taxonomy is the schema: its synonyms are the surface forms KG-MLIM and KG-ITM find in the text
    assert cat.schema.surface_forms("color", "blue") == ["blue", "navy", "cobalt"]
    assert cat.schema.attributes["material"].visible is False
    assert [m.value for m in cat.schema.find_mentions("A navy linen dress", "Dresses")] == ["blue", "linen"]
    # seeded split by product, stratified by subcategory: a quarter of each to test and to val
    by_sub = {}
    for p in products.values():
        by_sub.setdefault(p.subcategory, []).append(p.split)
    assert {s: sorted(v) for s, v in by_sub.items()} == {
        "Midi Dresses": ["test", "train", "train", "val"], "Maxi Dresses": ["test", "train", "train", "val"],
        "Totes": ["test", "train", "train", "val"]}
    again = read_catalog(_import(tmp_path, table, images, out="again"))
    assert {p.product_id: p.split for p in again.iter_products()} == {i: p.split for i, p in products.items()}
    manifest = json.loads((cat.root / "catalog.json").read_text())
    assert manifest["rejected_rows"] == 0 and "stratified by subcategory" in manifest["split_policy"]


BAD = [
    (_row("X1", dept="Shoes"), "Department", "unknown category 'Shoes'"),
    (_row("X2", colour="Teal"), "Colour", "color value 'Teal' is not in the taxonomy"),
    (_row("X3", images="../outside.jpg"), "Image Paths", "image path '../outside.jpg' is outside --images"),
    (_row("X4", images="X4/missing.jpg"), "Image Paths", "image file not found"),
    (_row("D00"), "SKU", "id 'D00' repeats row 1"),
    (_row("X5", kind="Mini Dresses"), "Product Type", "'Mini Dresses' is not a subcategory of 'Dresses'"),
    (_row("X6", name=""), "Product Name", "title is empty"),
    (_row("X7", dept="Bags", kind="Totes", extra='{"material": "linen"}'), "Extra",
     "attribute 'material' does not apply to 'Bags'"),
]


def test_bad_rows_are_named_by_row_and_column_and_nothing_is_written_above_max_reject(tmp_path):
    table, images = _shop(tmp_path, GOOD + [row for row, _, _ in BAD])
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError):
        _import(tmp_path, table, images)
    with pytest.raises(CatalogError) as info:
        _import(tmp_path, table, images, out="cat", max_reject=len(BAD) - 1)
    message = str(info.value)
    assert f"{len(BAD)} rejected row(s), over --max-reject {len(BAD) - 1}" in message
    for k, (_, column, reason) in enumerate(BAD):
        assert f"row {13 + k} " in message and f"field '{column}': {reason}" in message
    assert not (tmp_path / "cat").exists()
    with (tmp_path / "cat.rejected.csv").open() as fh:
        assert [(r["row"], r["column"]) for r in csv.DictReader(fh)] == [(str(13 + k), c) for k, (_, c, _) in enumerate(BAD)]
    cat = read_catalog(_import(tmp_path, table, images, out="cat", max_reject=len(BAD)))
    assert len(list(cat.iter_products())) == 12
    assert len((cat.root / REJECT_REPORT).read_text().splitlines()) == len(BAD) + 1
    assert (tmp_path / "catalog" / "mine.txt").read_text() == "keep"


def test_unknown_values_can_join_the_schema_with_a_warning(tmp_path, caplog):
    mapping = {**MAPPING, "unknown_values": "add"}
    table, images = _shop(tmp_path, GOOD + [_row("X2", colour="Teal")], mapping)
    cat = read_catalog(_import(tmp_path, table, images))
    assert {p.product_id: p.attributes["color"] for p in cat.iter_products()}["X2"] == "Teal"
    assert "Teal" in cat.schema.values_of("color")
    assert "color value 'Teal' is not in the taxonomy; added" in caplog.text


def test_a_mapping_naming_a_missing_column_stops_before_any_row(tmp_path):
    mapping = {**MAPPING, "columns": {**MAPPING["columns"], "title": "Name"}}
    table, images = _shop(tmp_path, GOOD, mapping)
    with pytest.raises(CatalogError, match=r"mapping: field 'columns.title': names column 'Name', which export.csv "
                                           r"does not have \(columns: .*Product Name"):
        _import(tmp_path, table, images)
    assert not (tmp_path / "catalog").exists()


def test_jsonl_and_parquet_tables_image_columns_and_a_split_column(tmp_path):
    table, images = _shop(tmp_path, GOOD)
    rows = [dict(zip(HEADER, row)) for row in GOOD]
    for row, split in zip(rows, ["train", "val", "test"] * 4):
        front, back = row.pop("Image Paths").split("|")
        row |= {"Front": front, "Back": back, "Split": split, "Extra": {"material": "linen"} if row["Extra"] else None}
    mapping = {**MAPPING, "columns": {**MAPPING["columns"], "images": ["Front", "Back"], "split": "Split"}}
    (tmp_path / "mapping.yaml").write_text(yaml.safe_dump(mapping))
    jsonl = tmp_path / "export.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    parquet = tmp_path / "export.parquet"
    pq.write_table(pa.Table.from_pylist([{**r, "Extra": json.dumps(r["Extra"]) if r["Extra"] else None} for r in rows]),
                   parquet)
    for source in (jsonl, parquet):
        cat = read_catalog(_import(tmp_path, source, images, out=source.suffix[1:]))
        products = {p.product_id: p for p in cat.iter_products()}
        assert [products[r["SKU"]].split for r in rows] == ["train", "val", "test"] * 4
        assert products["D00"].attributes == {"color": "blue", "material": "linen"} and len(products["D00"].images) == 2


def test_the_cli_imports_and_says_what_it_rejected(tmp_path):
    table, images = _shop(tmp_path, GOOD + [BAD[1][0]])
    args = ["data", "import", str(table), "--images", str(images), "--mapping", str(tmp_path / "mapping.yaml"),
            "--taxonomy", str(tmp_path / "taxonomy.yaml"), "--out", str(tmp_path / "cat"),
            "--params", str(REPO / "params.yaml")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1 and "row 13 (id 'X2'): field 'Colour': color value 'Teal'" in res.output
    res = CliRunner().invoke(app, [*args, "--max-reject", "1"])
    assert res.exit_code == 0, res.output
    assert "12 products" in res.output and "rejected 1 of 13 rows" in res.output
