import hashlib
from collections import Counter
from pathlib import Path

from fashionvlp.config import SynthConfig, load_params
from fashionvlp.data.catalog_io import read_catalog
from fashionvlp.data.synth.generate import assign_splits, compatible, plan_catalog, synthesize
from fashionvlp.data.synth.spec import SUBCATEGORIES
from tests.conftest import REPO


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_byte_deterministic_whatever_the_worker_count(tiny_catalog, tmp_path):
    cfg = SynthConfig(num_products=140, image_size=64, num_outfits=30, workers=2)
    again = synthesize(cfg, tmp_path / "again")
    assert _tree_digest(again) == _tree_digest(tiny_catalog)


def test_default_size_leaves_101_test_products_per_subcategory():
    cfg = load_params(REPO / "params.yaml").data.synth
    splits = assign_splits(cfg)
    per_sub = Counter(SUBCATEGORIES[i % len(SUBCATEGORIES)].name for i, s in enumerate(splits) if s == "test")
    assert len(per_sub) == len(SUBCATEGORIES) == 14
    assert min(per_sub.values()) >= 101
    assert len({s.category for s in SUBCATEGORIES}) >= 6


def test_catalog_contents(tiny_catalog):
    cat = read_catalog(tiny_catalog)
    products = list(cat.iter_products())
    assert len(products) == 140
    assert all(1 <= len(p.images) <= 4 and p.images[0].view == "front" for p in products)
    assert {len(p.images) for p in products} >= {1, 2, 3}
    assert Counter(p.split for p in products).keys() == {"train", "val", "test"}
    for p in products:
        for attr, value in p.attributes.items():
            assert cat.schema.check_attribute(p.category, attr, value) is None


def test_text_is_partially_aligned():
    plan = plan_catalog(SynthConfig(num_products=700, num_outfits=0))
    schema = plan.schema
    unwritten = written_invisible = 0
    for p in plan.products:
        text = f"{p.title}. {p.description}"
        named = {m.attribute for m in schema.find_mentions(text, p.spec.category)}
        visible = {a for a in p.attributes if schema.attributes[a].visible}
        unwritten += bool(visible - named)
        written_invisible += "material" in named
        # whatever the text names about a visible attribute is true of the image
        for m in schema.find_mentions(text, p.spec.category):
            if m.attribute in ("color", "neckline", "sleeve_length", "heel", "strap"):
                assert p.attributes.get(m.attribute) == m.value, (p.product_id, m, text)
    assert unwritten > 0.8 * len(plan.products)      # most products leave some visible attribute unwritten
    assert written_invisible > 0.5 * len(plan.products)  # and most write the (invisible) material


def test_triplets_differ_in_one_or_two_attributes_and_outfits_follow_the_rule():
    plan = plan_catalog(SynthConfig(num_products=700, num_outfits=60))
    by_id = {p.product_id: p for p in plan.products}
    assert plan.triplets
    for t in plan.triplets:
        ref, tgt = by_id[t["reference_id"]], by_id[t["target_id"]]
        assert ref.spec.name == tgt.spec.name and ref.split == tgt.split == t["split"]
        diff = [a for a in ref.attributes if a != "material" and ref.attributes[a] != tgt.attributes[a]]
        assert 1 <= len(diff) <= 3    # 1–2 chosen, plus sleeves when a halter neckline forces them
        assert len(t["captions"]) == 2 and all(t["captions"])
    assert len(plan.outfits) >= 55
    for o in plan.outfits:
        items = [by_id[i] for i in o["product_ids"]]
        assert compatible([i.attributes for i in items])
        assert len({i.spec.formality for i in items}) == 1
        assert {"SHOES", "BAGS"} <= {i.spec.category for i in items}
        assert len({i.split for i in items}) == 1


def test_products_of_a_subcategory_differ_only_in_attributes():
    plan = plan_catalog(SynthConfig(num_products=280, num_outfits=0))
    shapes = {}
    for p in plan.products:
        shapes.setdefault(p.spec.name, set()).add(p.look.shape)
    assert all(len(s) == 1 for s in shapes.values())
