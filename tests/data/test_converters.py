import json

import h5py
import numpy as np
import pytest
from PIL import Image

from fashionvlp.data.catalog_io import CatalogError, read_catalog
from fashionvlp.data.converters.fashiongen import convert_fashiongen
from fashionvlp.data.converters.fashioniq import convert_fashioniq
from fashionvlp.data.converters.polyvore import convert_polyvore


def _fashiongen_h5(path, rows, drop=()):
    """Rows are (product_id, name, category, subcategory); the real file's field names and dtypes."""
    n = len(rows)
    fields = {
        "input_image": np.random.default_rng(0).integers(0, 255, (n, 256, 256, 3), dtype=np.uint8),
        "input_productID": np.array([[r[0]] for r in rows], dtype=np.int64),
        "input_name": np.array([[r[1].encode()] for r in rows], dtype="S128"),
        "input_description": np.array([[b"A navy v-neck dress in cotton."]] * n, dtype="S256"),
        "input_category": np.array([[r[2].encode()] for r in rows], dtype="S32"),
        "input_subcategory": np.array([[r[3].encode()] for r in rows], dtype="S32"),
        "input_composition": np.array([[b"100% silk"]] * n, dtype="S64"),
        "input_pose": np.array([[f"id_gridfs_{k % 2 + 1}".encode()] for k in range(n)], dtype="S32"),
        "input_gender": np.array([[b"WOMEN"]] * n, dtype="S16"),
        "input_season": np.array([[b"SS2017"]] * n, dtype="S16"),
    }
    with h5py.File(path, "w") as f:
        for name, value in fields.items():
            if name not in drop:
                f.create_dataset(name, data=value)
    return path


def test_fashiongen_groups_views_by_product(tmp_path):
    train = _fashiongen_h5(tmp_path / "train.h5", [(7, "Navy dress", "DRESSES", "SHORT DRESSES"),
                                                    (7, "Navy dress", "DRESSES", "SHORT DRESSES"),
                                                    (9, "Red sneakers", "SNEAKERS", "LOW TOP SNEAKERS")])
    test = _fashiongen_h5(tmp_path / "val.h5", [(11, "Black tote", "BAGS", "TOTE BAGS")])
    root = convert_fashiongen({"train": train, "test": test}, tmp_path / "cat")
    products = {p.product_id: p for p in read_catalog(root).iter_products()}
    assert len(products["7"].images) == 2 and products["7"].split == "train"
    assert products["11"].split == "test"
    assert products["7"].attributes == {"color": "blue", "neckline": "v-neck", "material": "cotton"}
    assert "SNEAKERS" in read_catalog(root).schema.categories   # the dataset's own taxonomy


def test_fashiongen_missing_field_is_named(tmp_path):
    bad = _fashiongen_h5(tmp_path / "train.h5", [(1, "Dress", "DRESSES", "SHORT DRESSES")], drop=("input_name",))
    with pytest.raises(CatalogError, match=r"field 'input_name': required dataset is missing"):
        convert_fashiongen({"train": bad}, tmp_path / "cat")
    assert not (tmp_path / "cat").exists()


def _fashioniq(root, captions):
    (root / "captions").mkdir(parents=True)
    (root / "image_splits").mkdir()
    (root / "images").mkdir()
    (root / "tags").mkdir()
    for asin in ("B001", "B002", "B003"):
        Image.new("RGB", (80, 100), "navy").save(root / "images" / f"{asin}.jpg")
    (root / "image_splits" / "split.dress.train.json").write_text(json.dumps(["B001", "B002", "B003"]))
    (root / "tags" / "asin2attr.dress.train.json").write_text(json.dumps({"B001": [["floral"], ["maxi"]]}))
    (root / "captions" / "cap.dress.train.json").write_text(json.dumps(captions))
    return root


def test_fashioniq_triplets(tmp_path):
    root = _fashioniq(tmp_path / "fiq", [{"candidate": "B001", "target": "B002", "captions": ["is red", "shorter"]}])
    cat = read_catalog(convert_fashioniq(root, tmp_path / "cat"))
    (t,) = list(cat.iter_triplets())
    assert (t.reference_id, t.target_id, t.group, t.split) == ("B001", "B002", "dress", "train")
    b001 = next(p for p in cat.iter_products() if p.product_id == "B001")
    assert b001.attributes.get("pattern") == "floral" and "floral" in b001.title


def test_fashioniq_wrong_caption_count_is_named(tmp_path):
    root = _fashioniq(tmp_path / "fiq", [{"candidate": "B001", "target": "B002", "captions": ["only one"]}])
    with pytest.raises(CatalogError, match=r"cap.dress.train.json\[0\]: field 'captions': expected a list of 2"):
        convert_fashioniq(root, tmp_path / "cat")


def test_polyvore_outfits_and_missing_image(tmp_path):
    root = tmp_path / "pv"
    (root / "images").mkdir(parents=True)
    (root / "nondisjoint").mkdir()
    meta = {"1": {"title": "white sneakers", "category_id": "10", "semantic_category": "shoes"},
            "2": {"title": "striped tote", "category_id": "20", "semantic_category": "bags"},
            "3": {"title": "blue jeans", "category_id": "30", "semantic_category": "bottoms"}}
    (root / "polyvore_item_metadata.json").write_text(json.dumps(meta))
    (root / "categories.csv").write_text("10,Sneakers,shoes\n20,Tote Bags,bags\n30,Jeans,bottoms\n")
    for item in ("1", "2", "3"):
        Image.new("RGB", (64, 64), "white").save(root / "images" / f"{item}.jpg")
    outfit = {"set_id": "s1", "items": [{"item_id": "3", "index": 3}, {"item_id": "1", "index": 1},
                                        {"item_id": "2", "index": 2}]}
    (root / "nondisjoint" / "train.json").write_text(json.dumps([outfit]))
    cat = read_catalog(convert_polyvore(root, tmp_path / "cat"))
    (o,) = list(cat.iter_outfits())
    assert o.product_ids == ("1", "2", "3")
    assert {p.product_id: p.attributes.get("pattern") for p in cat.iter_products()}["2"] == "striped"
    (root / "images" / "2.jpg").unlink()
    with pytest.raises(CatalogError, match=r"item '2': field 'images\[0\]': image file not found"):
        convert_polyvore(root, tmp_path / "cat2")
