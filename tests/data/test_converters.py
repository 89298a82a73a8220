import json

import h5py
import numpy as np
import pytest
from PIL import Image

from fashionvlp.data.catalog_io import CatalogError, read_catalog
from fashionvlp.data.converters.fashiongen import convert_fashiongen
from fashionvlp.data.converters.fashioniq import convert_fashioniq
from fashionvlp.data.converters.polyvore import convert_polyvore


def _fashiongen_h5(path, rows, drop=(), description="A navy v-neck dress in cotton.", replace=None):
    """Rows are (product_id, name, category, subcategory); the real file's field names and dtypes, its strings
    latin-1 bytes as released."""
    n = len(rows)
    fields = {
        "input_image": np.random.default_rng(0).integers(0, 255, (n, 256, 256, 3), dtype=np.uint8),
        "input_productID": np.array([[r[0]] for r in rows], dtype=np.int64),
        "input_name": np.array([[r[1].encode("latin-1")] for r in rows], dtype="S128"),
        "input_description": np.array([[description.encode("latin-1")]] * n, dtype="S256"),
        "input_category": np.array([[r[2].encode()] for r in rows], dtype="S32"),
        "input_subcategory": np.array([[r[3].encode()] for r in rows], dtype="S32"),
        "input_composition": np.array([[b"100% silk"]] * n, dtype="S64"),
        "input_pose": np.array([[f"id_gridfs_{k % 2 + 1}".encode()] for k in range(n)], dtype="S32"),
        "input_gender": np.array([[b"WOMEN"]] * n, dtype="S16"),
        "input_season": np.array([[b"SS2017"]] * n, dtype="S16"),
    }
    fields.update(replace or {})
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


def test_fashiongen_strings_are_latin1_as_released(tmp_path):
    train = _fashiongen_h5(tmp_path / "train.h5", [(3, "Crêpe wrap dress", "DRESSES", "LONG DRESSES")],
                           description="Robe en crêpe de soie écrue, col en V. Navy.")
    (product,) = read_catalog(convert_fashiongen({"train": train}, tmp_path / "cat", workers=1)).iter_products()
    assert product.title == "Crêpe wrap dress"
    assert product.description == "Robe en crêpe de soie écrue, col en V. Navy."
    assert "\ufffd" not in product.title + product.description
    assert product.attributes["color"] == "blue"
    # the option names another encoding; bytes that are not of it are an error, not replacement characters
    with pytest.raises(CatalogError, match=r"not utf-8"):
        convert_fashiongen({"train": train}, tmp_path / "cat2", encoding="utf-8", workers=1)
    assert not (tmp_path / "cat2").exists()


def test_fashiongen_a_product_in_two_files_is_named_unless_a_policy_is_given(tmp_path):
    train = _fashiongen_h5(tmp_path / "train.h5", [(7, "Navy dress", "DRESSES", "SHORT DRESSES"),
                                                    (8, "Red dress", "DRESSES", "SHORT DRESSES")])
    test = _fashiongen_h5(tmp_path / "validation.h5", [(8, "Red dress", "DRESSES", "SHORT DRESSES"),
                                                        (11, "Black tote", "BAGS", "TOTE BAGS")])
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "keep.txt").write_text("mine")
    with pytest.raises(CatalogError, match=r"product '8': field 'input_productID': in .*train.h5 and .*validation.h5"):
        convert_fashiongen({"train": train, "test": test}, tmp_path / "cat", workers=1)
    with pytest.raises(FileExistsError):      # what was there is not touched
        convert_fashiongen({"train": train, "test": test}, tmp_path / "cat", on_duplicate="first", workers=1)
    assert (tmp_path / "cat" / "keep.txt").read_text() == "mine"
    root = convert_fashiongen({"train": train, "test": test}, tmp_path / "cat2", on_duplicate="first", workers=2)
    cat = read_catalog(root)
    assert {p.product_id: p.split for p in cat.iter_products()} == {"7": "train", "8": "train", "11": "test"}
    manifest = json.loads((root / "catalog.json").read_text())
    assert manifest["duplicates"] == {"policy": "first", "products": 1} and manifest["encoding"] == "latin-1"


def test_fashiongen_val_is_a_seeded_share_of_the_train_products(tmp_path):
    rows = [(pid, f"Dress {pid}", "DRESSES", "SHORT DRESSES") for pid in range(40) for _ in range(2)]
    train = _fashiongen_h5(tmp_path / "train.h5", rows)
    splits = []
    for k in range(2):
        cat = read_catalog(convert_fashiongen({"train": train}, tmp_path / f"cat{k}", val_share=0.25, seed=3, workers=1))
        splits.append({p.product_id: (p.split, len(p.images)) for p in cat.iter_products()})
    assert splits[0] == splits[1]
    assert sum(split == "val" for split, _ in splits[0].values()) == 10
    assert all(n == 2 for _, n in splits[0].values())          # whole products: both views go together
    other = read_catalog(convert_fashiongen({"train": train}, tmp_path / "cat9", val_share=0.25, seed=4, workers=1))
    assert {p.product_id for p in other.iter_products() if p.split == "val"} != \
        {pid for pid, (split, _) in splits[0].items() if split == "val"}


def test_fashiongen_wrong_dtype_is_named(tmp_path):
    bad = _fashiongen_h5(tmp_path / "train.h5", [(1, "Dress", "DRESSES", "SHORT DRESSES")],
                         replace={"input_image": np.zeros((1, 64, 64, 3), dtype=np.float32),
                                  "input_name": np.zeros((1, 1), dtype=np.float64)})
    with pytest.raises(CatalogError) as info:
        convert_fashiongen({"train": bad}, tmp_path / "cat")
    assert "field 'input_image': expected N×H×W×3 uint8, got shape (1, 64, 64, 3) float32" in str(info.value)
    assert "field 'input_name': expected byte strings, got dtype float64" in str(info.value)
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


def _fashioniq_release(root, asins_by_split, captions_by_split, present):
    """The release's layout for the dress group; images only for ``present`` (the rest are dead URLs)."""
    for sub in ("captions", "image_splits", "images"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for split, asins in asins_by_split.items():
        (root / "image_splits" / f"split.dress.{split}.json").write_text(json.dumps(asins))
    for split, entries in captions_by_split.items():
        (root / "captions" / f"cap.dress.{split}.json").write_text(json.dumps(entries))
    for asin in present:
        Image.new("RGB", (80, 100), "red").save(root / "images" / f"{asin}.jpg")
    return root


def test_fashioniq_as_released_val_is_evaluated_test_has_no_targets_dead_images_are_listed(tmp_path):
    train = [f"T{k}" for k in range(8)]
    val = ["V0", "V1", "V2", "V3"]
    test = ["X0", "X1"]
    captions = {
        "train": [{"candidate": "T0", "target": "T1", "captions": ["is red", "longer"]},
                  {"candidate": "T2", "target": "T7", "captions": ["darker", "no sleeves"]}],   # T7's image is dead
        "val": [{"candidate": "V0", "target": "V1", "captions": ["is blue", "shorter"]}],
        "test": [{"candidate": "X0", "captions": ["is green", "with a belt"]},               # targets withheld
                 {"candidate": "X1", "captions": ["is pink", "floral"]}]}
    root = _fashioniq_release(tmp_path / "fiq", {"train": train, "val": val, "test": test}, captions,
                              present=train[:7] + val + test)
    cat_root = convert_fashioniq(root, tmp_path / "cat")
    cat = read_catalog(cat_root)
    splits = {p.product_id: p.split for p in cat.iter_products()}
    assert splits == {**{a: "train" for a in train[:7]}, **{a: "test" for a in val}}
    assert [(t.reference_id, t.split) for t in cat.iter_triplets()] == [("T0", "train"), ("V0", "test")]
    manifest = json.loads((cat_root / "catalog.json").read_text())
    assert manifest["left_out"] == {"test_images": 2, "captions_without_target": {"cap.dress.test.json": 2},
                                    "missing_images": 1, "triplets_missing_image": 1}
    assert (cat_root / "missing_images.txt").read_text() == "T7\n"


def test_fashioniq_too_many_missing_images_fails_naming_the_count(tmp_path):
    train = [f"T{k}" for k in range(10)]
    root = _fashioniq_release(tmp_path / "fiq", {"train": train}, {"train": []}, present=train[:8])
    with pytest.raises(CatalogError, match=r"2 of 10 product images are missing \(20.0%\), over --max-missing 15%"):
        convert_fashioniq(root, tmp_path / "cat")
    assert not (tmp_path / "cat").exists()
    cat = read_catalog(convert_fashioniq(root, tmp_path / "cat", max_missing=0.25))
    assert len(list(cat.iter_products())) == 8


@pytest.mark.parametrize("captions", [["only one"], ["one", "two", "three"]])
def test_fashioniq_wrong_caption_count_is_named(tmp_path, captions):
    root = _fashioniq(tmp_path / "fiq", [{"candidate": "B001", "target": "B002", "captions": captions}])
    with pytest.raises(CatalogError, match=rf"cap.dress.train.json\[0\]: field 'captions': expected a list of 2 "
                                           rf"captions, got {len(captions)}"):
        convert_fashioniq(root, tmp_path / "cat")
    assert not (tmp_path / "cat").exists()


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


def _polyvore_release(root, fitb=None, compatibility=None):
    """polyvore_outfits/ as released: metadata, categories.csv, images/, nondisjoint/{train,valid,test}.json and
    the test split's fill_in_blank and compatibility files (items named {set_id}_{index}); item 5 is in a train
    and a test outfit."""
    (root / "images").mkdir(parents=True)
    (root / "nondisjoint").mkdir()
    kinds = {"1": ("white sneakers", "10", "shoes"), "2": ("striped tote", "20", "bags"),
             "3": ("blue jeans", "30", "bottoms"), "4": ("black boots", "10", "shoes"),
             "5": ("floral skirt", "30", "bottoms"), "6": ("red sandals", "10", "shoes"),
             "7": ("leather tote", "20", "bags"), "8": ("grey loafers", "10", "shoes")}
    meta = {item: {"title": t, "category_id": c, "semantic_category": s, "description": "", "url_name": t}
            for item, (t, c, s) in kinds.items()}
    (root / "polyvore_item_metadata.json").write_text(json.dumps(meta))
    (root / "categories.csv").write_text("10,Sneakers,shoes\n20,Tote Bags,bags\n30,Jeans,bottoms\n")
    for item in kinds:
        Image.new("RGB", (64, 64), "white").save(root / "images" / f"{item}.jpg")

    def outfit(set_id, *items):
        return {"set_id": set_id, "items": [{"item_id": i, "index": k + 1} for k, i in enumerate(items)]}

    (root / "nondisjoint" / "train.json").write_text(json.dumps([outfit("s1", "3", "1", "2"), outfit("s4", "5", "4")]))
    (root / "nondisjoint" / "valid.json").write_text(json.dumps([outfit("s5", "3", "8")]))
    (root / "nondisjoint" / "test.json").write_text(json.dumps([outfit("s2", "5", "6", "7"), outfit("s3", "3", "8")]))
    fitb = fitb if fitb is not None else [{"question": ["s2_1", "s2_3"], "answers": ["s3_2", "s2_2", "s3_1"],
                                           "blank_position": 2}]
    (root / "nondisjoint" / "fill_in_blank_test.json").write_text(json.dumps(fitb))
    compatibility = compatibility if compatibility is not None else "1 s2_1 s2_2 s2_3\n0 s3_1 s2_2 s3_2\n"
    (root / "nondisjoint" / "compatibility_test.txt").write_text(compatibility)
    return root


def test_polyvore_as_released_keeps_fitb_and_compatibility_and_shares_items(tmp_path):
    root = _polyvore_release(tmp_path / "polyvore_outfits")
    cat = read_catalog(convert_polyvore(root, tmp_path / "cat"))
    splits = {p.product_id: p.split for p in cat.iter_products()}
    assert splits["5"] == "train" and splits["6"] == "test"     # shared item: the first outfit file's split
    assert [o.product_ids for o in cat.iter_outfits() if o.split == "test"] == [("5", "6", "7"), ("3", "8")]
    (q,) = list(cat.iter_fitb())
    assert (q.product_ids, q.candidates, q.answer, q.split) == (("5", "7"), ("8", "6", "3"), 1, "test")
    compat = list(cat.iter_compatibility())
    assert [(o.product_ids, o.compatible) for o in compat] == [(("5", "6", "7"), True), (("3", "6", "8"), False)]
    counts = json.loads((cat.root / "catalog.json").read_text())["counts"]
    assert counts["fitb"] == 1 and counts["compatibility"] == 2


@pytest.mark.parametrize("fitb, compatibility, match", [
    ([{"question": ["s2_1", "s9_1"], "answers": ["s3_2", "s2_2"], "blank_position": 2}], None,
     r"fill_in_blank_test.json\[0\]: field 'question\[1\]': 's9_1' is not an item of test.json's outfits"),
    ([{"question": ["s2_1"], "answers": ["s3_2", "s3_1"], "blank_position": 2}], None,
     r"fill_in_blank_test.json\[0\]: field 'answers': 0 candidates come from the question's outfit"),
    ([{"answers": ["s3_2"]}], None, r"fill_in_blank_test.json\[0\]: field 'question': field is missing"),
    (None, "2 s2_1 s2_2\n", r"compatibility_test.txt line 1: field 'label': expected 0 or 1"),
    (None, "1 s2_1 s1_1\n", r"compatibility_test.txt line 1: field 'items': 's1_1' is not an item of test.json"),
])
def test_polyvore_bad_benchmark_records_are_named_and_nothing_is_written(tmp_path, fitb, compatibility, match):
    root = _polyvore_release(tmp_path / "polyvore_outfits", fitb, compatibility)
    with pytest.raises(CatalogError, match=match):
        convert_polyvore(root, tmp_path / "cat")
    assert not (tmp_path / "cat").exists()


def test_polyvore_outfit_naming_an_unknown_item_is_named(tmp_path):
    root = _polyvore_release(tmp_path / "polyvore_outfits")
    (root / "nondisjoint" / "train.json").write_text(json.dumps([{"set_id": "s1", "items": [
        {"item_id": "1", "index": 1}, {"item_id": "99", "index": 2}]}]))
    with pytest.raises(CatalogError, match=r"item '99': field 'metadata': item is in an outfit but not in polyvore_item"):
        convert_polyvore(root, tmp_path / "cat")
