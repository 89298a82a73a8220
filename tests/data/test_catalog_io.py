import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from fashionvlp.data.catalog_io import CatalogError, CatalogWriter, ImageLimits, encode_jpeg, read_catalog
from fashionvlp.data.synth.generate import synthetic_schema


def _jpeg(size=64):
    return encode_jpeg(np.full((size, size, 3), 128, np.uint8))


def _snapshot(root):
    return {p.relative_to(root): hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def _write(root, products, limits=ImageLimits()):
    with CatalogWriter(root, synthetic_schema(), source="test", image_limits=limits) as w:
        for pid, title, attrs, image in products:
            rec = f"product {pid!r}"
            view = w.add_image_bytes(pid, 0, "front", image, record=rec)
            w.add_product(rec, product_id=pid, title=title, category="DRESSES", subcategory="short dresses",
                          attributes=attrs, images=(view,) if view else (), split="train")
        return w.commit()


def test_round_trip(tmp_path):
    root = _write(tmp_path / "cat", [("a1", "Red dress", {"color": "red"}, _jpeg())])
    cat = read_catalog(root)
    (p,) = list(cat.iter_products())
    assert p.attributes == {"color": "red"} and (root / p.images[0].path).exists()


@pytest.mark.parametrize("product, field, message", [
    (("x1", "   ", {}, None), "title", "title is empty"),
    (("x1", "Dress", {"color": "teal"}, None), "attributes.color", "unknown value 'teal'"),
    (("x1", "Dress", {}, b"not an image"), "images[0]", "does not decode"),
    (("x1", "Dress", {}, "big"), "images[0]", "over the limit"),
])
def test_bad_records_are_named_and_nothing_is_lost(tmp_path, product, field, message):
    root = _write(tmp_path / "cat", [("a1", "Red dress", {"color": "red"}, _jpeg())])
    before = _snapshot(root)
    pid, title, attrs, image = product
    image = _jpeg(200) if image == "big" else (image or _jpeg())
    with pytest.raises(CatalogError) as exc:
        _write(root, [("a1", "Red dress", {}, _jpeg()), (pid, title, attrs, image)], ImageLimits(max_side=128))
    text = str(exc.value)
    assert "product 'x1'" in text and f"field '{field}'" in text and message in text
    assert _snapshot(root) == before
    assert not list(tmp_path.glob(".cat.*"))     # no staging left behind


def test_products_stream_to_disk_a_row_group_at_a_time(tmp_path, monkeypatch):
    """A big catalog's products are not held in memory: past a row group they are on disk, and the table
    reads back whole and in order; a bad record after a flush still leaves nothing behind."""
    import pyarrow.parquet as pq

    from fashionvlp.data import catalog_io

    monkeypatch.setattr(catalog_io, "PRODUCT_ROW_GROUP", 3)
    rows = [(f"p{i}", f"Dress {i}", {"color": "red"}, _jpeg()) for i in range(8)]
    root = _write(tmp_path / "cat", rows)
    assert pq.ParquetFile(root / "products.parquet").metadata.num_row_groups == 3
    assert [p.product_id for p in read_catalog(root).iter_products()] == [r[0] for r in rows]
    assert read_catalog(root).manifest["counts"]["images"] == 8
    with pytest.raises(CatalogError, match=r"product 'p7'.*duplicate id \(rows 7 and 8\)"):
        _write(tmp_path / "other", rows + [rows[-1]])
    assert not (tmp_path / "other").exists() and not list(tmp_path.glob(".other.*"))


def test_duplicate_ids(tmp_path):
    with pytest.raises(CatalogError, match=r"product 'a1': field 'product_id': duplicate id"):
        _write(tmp_path / "cat", [("a1", "Red dress", {}, _jpeg()), ("a1", "Blue dress", {}, _jpeg())])
    assert not (tmp_path / "cat").exists()


def test_refuses_to_replace_a_directory_that_is_not_a_catalog(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        _write(tmp_path / "cat", [("a1", "Red dress", {}, _jpeg())])
    assert (tmp_path / "cat" / "precious.txt").read_text() == "keep me"


def test_truncated_image_is_corrupt(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, "PNG")
    with pytest.raises(CatalogError, match="does not decode"):
        _write(tmp_path / "cat", [("a1", "Red dress", {}, buf.getvalue()[:60])])
