"""Which view a training sample's image comes from: any of the product's views, or its main one."""

import pytest
import torch

from fashionvlp.config import ModelConfig
from fashionvlp.data.catalog_io import read_catalog
from fashionvlp.data.pretrain_dataset import ImageTransform, PretrainDataset
from fashionvlp.models.registry import build_model


@pytest.fixture(scope="module")
def multi_view(tiny_catalog, tmp_path_factory):
    catalog = read_catalog(tiny_catalog)
    products = [p for p in catalog.iter_products() if len(p.images) >= 3][:6]
    assert products, "the tiny catalog has products with several views"
    cfg = ModelConfig.model_validate({
        "image": {"name": "vit_micro_patch8", "image_size": 32},
        "text": {"source": "scratch", "scratch": {"vocab_size": 200, "hidden_size": 32, "layers": 1, "heads": 2,
                                                  "intermediate_size": 64}}})
    model = build_model(cfg, train_texts=[p.text for p in products] * 20,
                        tokenizer_out=tmp_path_factory.mktemp("tok"))
    transform = ImageTransform(32, model.image_encoder.normalization)
    return catalog, products, model.tokenizer, transform


def _source_views(catalog, products, tokenizer, transform, views: str, epochs: int = 6) -> list[set[int]]:
    """Per product, the indices of the views its pixels_a came from over a few epochs."""
    dataset = PretrainDataset(catalog, products, tokenizer, transform, 32, [], 1, hflip=False, views=views)
    rendered = [[transform.to_tensor(transform.load(catalog.root / v.path)) for v in p.images] for p in products]
    seen = [set() for _ in products]
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for i in range(len(products)):
            pixels = dataset[i]["pixels_a"]
            seen[i] |= {k for k, view in enumerate(rendered[i]) if torch.equal(view, pixels)}
    return seen


def test_main_takes_every_sample_from_the_first_view_and_all_from_any(multi_view):
    main = _source_views(*multi_view, views="main")
    assert all(s == {0} for s in main)
    every = _source_views(*multi_view, views="all")
    assert sum(len(s) > 1 for s in every) >= len(every) // 2      # several views per product over 6 epochs


def test_views_must_be_all_or_main(multi_view):
    catalog, products, tokenizer, transform = multi_view
    with pytest.raises(ValueError, match="views must be 'all' or 'main', not 'front'"):
        PretrainDataset(catalog, products, tokenizer, transform, 32, [], 1, views="front")
