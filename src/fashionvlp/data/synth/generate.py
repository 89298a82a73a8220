"""The embedded synthetic fashion catalog (``fashionvlp data synth``).

Generation is two-phase so it is byte-deterministic and parallel:
1. ``plan_catalog`` makes every random choice sequentially from one seeded generator: splits,
   attributes, texts, looks, poses, FashionIQ-style triplets and outfits.
2. Rendering is a pure function of the plan, spread over processes; images are written in plan order.
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashionvlp.config import SynthConfig
from fashionvlp.data.catalog_io import CatalogWriter, ImageLimits, check_image_bytes, encode_jpeg
from fashionvlp.data.schema import AttributeSchema, load_knowledge_base
from fashionvlp.data.synth.render import DETAIL_ANCHORS, Look, Pose, render
from fashionvlp.data.synth.spec import (
    ALL_COLORS, COLOR_SHADES, NEUTRAL_COLORS, OUTFIT_ROLES, SUBCATEGORIES, TRIPLET_GROUPS, SubcategorySpec,
)
from fashionvlp.data.synth.text import relative_captions, write_product_text

log = logging.getLogger(__name__)

BACKGROUNDS = [(244, 244, 242), (232, 232, 232), (236, 229, 216), (226, 231, 237), (245, 240, 235), (218, 218, 214)]
VIEW_ORDER = ("front", "back", "detail", "alternate")
# Attributes a FashionIQ-style modification may change.
MODIFIABLE = ("color", "pattern", "sleeve_length", "neckline", "length", "silhouette")


@dataclass(frozen=True)
class PlannedProduct:
    product_id: str
    spec: SubcategorySpec
    split: str
    attributes: dict[str, str]          # ground truth: everything the renderer shows
    record_attributes: dict[str, str]   # what the catalog stores (some values missing)
    title: str
    description: str
    look: Look
    poses: tuple[Pose, ...]


@dataclass(frozen=True)
class CatalogPlan:
    products: list[PlannedProduct]
    triplets: list[dict]
    outfits: list[dict]
    schema: AttributeSchema


def synthetic_schema() -> AttributeSchema:
    """The knowledge base restricted to what the synthetic catalog uses."""
    categories: dict[str, list[str]] = {}
    values: dict[str, dict[str, set[str]]] = {}
    for spec in SUBCATEGORIES:
        categories.setdefault(spec.category, []).append(spec.name)
        for attr, vals in spec.attributes.items():
            values.setdefault(spec.category, {}).setdefault(attr, set()).update(vals)
    return load_knowledge_base().restrict(
        categories, {c: {a: sorted(v) for a, v in attrs.items()} for c, attrs in values.items()}
    )


def assign_splits(cfg: SynthConfig) -> list[str]:
    """Split of product i. Subcategories are balanced (i mod 14), and each gets exact split counts."""
    rng = np.random.default_rng([cfg.seed, 1])
    n_sub = len(SUBCATEGORIES)
    splits = [""] * cfg.num_products
    for s in range(n_sub):
        members = list(range(s, cfg.num_products, n_sub))
        n = len(members)
        # A split with a non-zero fraction gets at least one product per subcategory, even when tiny.
        n_test = max(round(n * cfg.splits.test), int(cfg.splits.test > 0 and n >= 3))
        n_val = max(round(n * cfg.splits.val), int(cfg.splits.val > 0 and n >= 3))
        order = rng.permutation(n)
        for rank, k in enumerate(order):
            splits[members[k]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return splits


def _sample_attributes(rng: np.random.Generator, spec: SubcategorySpec) -> dict[str, str]:
    attrs = {a: str(vals[int(rng.integers(len(vals)))]) for a, vals in spec.attributes.items()}
    return _constrain(attrs)


def _constrain(attrs: dict[str, str]) -> dict[str, str]:
    if attrs.get("neckline") == "halter":
        attrs["sleeve_length"] = "sleeveless"
    return attrs


def _modify(rng: np.random.Generator, spec: SubcategorySpec, ref: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    options = [a for a in MODIFIABLE if a in spec.attributes and len(spec.attributes[a]) > 1]
    n_change = 1 if rng.random() < 0.6 else 2
    changed = [str(a) for a in rng.choice(options, size=min(n_change, len(options)), replace=False)]
    tgt = dict(ref)
    for attr in changed:
        choices = [v for v in spec.attributes[attr] if v != ref[attr]]
        tgt[attr] = choices[int(rng.integers(len(choices)))]
    tgt = _constrain(tgt)
    # The halter rule may change sleeves too; a caption must name every visible change.
    changed = [a for a in MODIFIABLE if a in tgt and tgt[a] != ref.get(a)]
    return tgt, changed


def _look(rng: np.random.Generator, spec: SubcategorySpec, attrs: dict[str, str]) -> tuple[Look, str]:
    shades = COLOR_SHADES[attrs["color"]]
    shade_form, base = shades[int(rng.integers(len(shades)))]
    jitter = rng.integers(-10, 11, size=3)
    base = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(base, jitter))
    pattern = attrs.get("pattern", "solid")
    if pattern == "colour-block" or rng.random() < 0.5:
        other = [c for c in ALL_COLORS if c != attrs["color"]]
        secondary = COLOR_SHADES[other[int(rng.integers(len(other)))]][0][1]
    else:
        secondary = (245, 245, 240) if sum(base) < 380 else (30, 30, 34)
    if pattern == "striped":
        angle = float([0.0, math.pi / 2, math.pi / 4, -math.pi / 4][int(rng.integers(4))] + rng.normal(0, 0.03))
    else:
        angle = float(rng.uniform(-0.3, 0.3))
    sole = (238, 236, 230) if rng.random() < 0.7 else (40, 40, 42)
    look = Look(shape=spec.shape, attributes=dict(attrs), base_rgb=base, secondary_rgb=secondary,
                pattern_scale=float(rng.uniform(0.05, 0.11)), pattern_angle=angle,
                pattern_seed=int(rng.integers(1 << 30)), sole_rgb=sole)
    return look, shade_form


def _poses(rng: np.random.Generator, spec: SubcategorySpec, view_weights: list[float]) -> tuple[Pose, ...]:
    w = np.asarray(view_weights, float)
    n_views = int(rng.choice(4, p=w / w.sum())) + 1
    extra = set(rng.choice(VIEW_ORDER[1:], size=n_views - 1, replace=False)) if n_views > 1 else set()
    studio = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    poses = []
    for view in VIEW_ORDER:
        if view != "front" and view not in extra:
            continue
        if view in ("front", "back"):
            poses.append(Pose(view=view, scale=float(rng.uniform(0.7, 0.86)), rotation=float(rng.uniform(-0.04, 0.04)),
                              offset=(float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.03, 0.03))),
                              background=studio, light=float(rng.uniform(0.95, 1.05)),
                              light_angle=float(rng.uniform(0, 2 * math.pi))))
        elif view == "detail":
            anchors = DETAIL_ANCHORS[spec.shape]
            ax, ay = anchors[int(rng.integers(len(anchors)))]
            poses.append(Pose(view=view, scale=float(rng.uniform(1.5, 2.2)), rotation=float(rng.uniform(-0.05, 0.05)),
                              offset=(0.0, 0.0), anchor=(ax + float(rng.normal(0, 0.02)), ay + float(rng.normal(0, 0.02))),
                              background=studio, light=float(rng.uniform(0.95, 1.08)),
                              light_angle=float(rng.uniform(0, 2 * math.pi))))
        else:
            poses.append(Pose(view=view, scale=float(rng.uniform(0.55, 0.8)), rotation=float(rng.uniform(-0.15, 0.15)),
                              offset=(float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.08, 0.08))),
                              flip=bool(rng.random() < 0.5),
                              background=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
                              light=float(rng.uniform(0.8, 1.15)), light_angle=float(rng.uniform(0, 2 * math.pi)),
                              tint=tuple(float(x) for x in rng.uniform(0.95, 1.05, size=3))))
    return tuple(poses)


def compatible(items: list[dict[str, str]]) -> bool:
    """Outfit rule: at most one patterned item, and at most one non-neutral colour across the outfit."""
    patterned = sum(1 for a in items if a.get("pattern", "solid") != "solid")
    accents = {a["color"] for a in items if a["color"] not in NEUTRAL_COLORS}
    return patterned <= 1 and len(accents) <= 1


def _plan_outfits(rng: np.random.Generator, products: list[PlannedProduct], num_outfits: int) -> list[dict]:
    pools: dict[tuple[str, str, str], list[PlannedProduct]] = {}
    for p in products:
        pools.setdefault((p.split, p.spec.category, p.spec.formality), []).append(p)
    split_sizes = {s: sum(p.split == s for p in products) for s in ("train", "val", "test")}
    total = sum(split_sizes.values())
    outfits: list[dict] = []
    candidates_of: dict[tuple, list[PlannedProduct]] = {}
    for split in ("train", "val", "test"):
        target = round(num_outfits * split_sizes[split] / total) if total else 0
        made, attempts = 0, 0
        while made < target and attempts < target * 20 + 20:
            attempts += 1
            formality = "casual" if rng.random() < 0.5 else "dressy"
            roles = [("DRESSES",), OUTFIT_ROLES["shoes"], OUTFIT_ROLES["bag"]] if rng.random() < 0.3 else \
                [OUTFIT_ROLES["top"], OUTFIT_ROLES["bottom"], OUTFIT_ROLES["shoes"], OUTFIT_ROLES["bag"]]
            chosen: list[PlannedProduct] = []
            for cats in roles:
                key = (split, cats, formality)
                if key not in candidates_of:
                    candidates_of[key] = [p for c in cats for p in pools.get((split, c, formality), [])]
                candidates = candidates_of[key]
                if not candidates:
                    break
                pick = None
                for k in rng.permutation(len(candidates))[:60]:
                    cand = candidates[int(k)]
                    if compatible([q.attributes for q in chosen] + [cand.attributes]):
                        pick = cand
                        break
                if pick is None:
                    break
                chosen.append(pick)
            if len(chosen) != len(roles):
                continue
            outfits.append({"outfit_id": f"O{len(outfits):06d}", "product_ids": tuple(p.product_id for p in chosen),
                            "split": split})
            made += 1
    return outfits


def plan_catalog(cfg: SynthConfig) -> CatalogPlan:
    schema = synthetic_schema()
    rng = np.random.default_rng([cfg.seed, 2])
    splits = assign_splits(cfg)
    products: list[PlannedProduct] = []
    triplets: list[dict] = []
    by_group: dict[tuple[str, str], list[int]] = {}
    for i in range(cfg.num_products):
        spec = SUBCATEGORIES[i % len(SUBCATEGORIES)]
        split = splits[i]
        earlier = by_group.get((spec.name, split), [])
        changed: list[str] = []
        if spec.category in TRIPLET_GROUPS and earlier and rng.random() < cfg.triplet_rate:
            ref = products[earlier[int(rng.integers(len(earlier)))]]
            attrs, changed = _modify(rng, spec, ref.attributes)
        else:
            attrs = _sample_attributes(rng, spec)
        look, shade_form = _look(rng, spec, attrs)
        title, description, _ = write_product_text(rng, schema, spec, attrs, shade_form)
        record = {a: v for a, v in attrs.items() if rng.random() >= cfg.attribute_missing_rate}
        product = PlannedProduct(product_id=f"FV{i:06d}", spec=spec, split=split, attributes=attrs,
                                 record_attributes=record, title=title, description=description, look=look,
                                 poses=_poses(rng, spec, cfg.view_weights))
        if changed:
            # Both directions: the modification, and its undoing worded from the new product's side.
            for source, target in ((ref, product), (product, ref)):
                captions = relative_captions(rng, schema, source.attributes, target.attributes, changed)
                triplets.append({"triplet_id": f"T{len(triplets):06d}", "reference_id": source.product_id,
                                 "target_id": target.product_id, "captions": captions,
                                 "group": TRIPLET_GROUPS[spec.category], "split": split})
        products.append(product)
        by_group.setdefault((spec.name, split), []).append(i)
    outfits = _plan_outfits(np.random.default_rng([cfg.seed, 3]), products, cfg.num_outfits)
    return CatalogPlan(products=products, triplets=triplets, outfits=outfits, schema=schema)


def _render_product(args: tuple[PlannedProduct, int, int, ImageLimits]) -> list[tuple[bytes, tuple[str | None, str]]]:
    """Each view's JPEG bytes and the writer's check of them (decoding is done here, in parallel)."""
    product, size, quality, limits = args
    encoded = [encode_jpeg(render(product.look, pose, size), quality) for pose in product.poses]
    return [(data, check_image_bytes(data, limits)) for data in encoded]


def synthesize(cfg: SynthConfig, out: Path, limits: ImageLimits = ImageLimits()) -> Path:
    """Writes the synthetic catalog to ``out`` (atomically). Returns the catalog path."""
    plan = plan_catalog(cfg)
    workers = cfg.workers or os.cpu_count() or 1
    jobs = [(p, cfg.image_size, cfg.jpeg_quality, limits) for p in plan.products]
    manifest = {"generator": "fashionvlp.data.synth",
                "config": cfg.model_dump(mode="json", exclude={"workers"}),
                "image_size": cfg.image_size}
    with CatalogWriter(out, plan.schema, source="synthetic", image_limits=limits) as writer:
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                rendered = pool.map(_render_product, jobs, chunksize=32)
                _write_products(writer, plan, rendered)
        else:
            _write_products(writer, plan, map(_render_product, jobs))
        for t in plan.triplets:
            writer.add_triplet(f"triplet {t['triplet_id']!r}", **t)
        for o in plan.outfits:
            writer.add_outfit(f"outfit {o['outfit_id']!r}", **o)
        return writer.commit(manifest)


def _write_products(writer: CatalogWriter, plan: CatalogPlan, rendered) -> None:
    for product, images in zip(plan.products, rendered):
        rec = f"product {product.product_id!r}"
        views = []
        for k, (pose, (data, checked)) in enumerate(zip(product.poses, images)):
            view = writer.add_image_bytes(product.product_id, k, pose.view, data, record=rec, checked=checked)
            if view is not None:
                views.append(view)
        writer.add_product(rec, product_id=product.product_id, title=product.title, description=product.description,
                           category=product.spec.category, subcategory=product.spec.name,
                           attributes=product.record_attributes, images=tuple(views), split=product.split)
