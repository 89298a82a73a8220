"""The training samplers: a seeded order per epoch, and same-subcategory runs (hard negatives)."""

import numpy as np
import pytest

from fashionvlp.config import ConfigError, load_params
from fashionvlp.data.pretrain_dataset import EpochSampler, GroupedEpochSampler
from tests.conftest import REPO

# The embedded catalog's shape: 14 subcategories of unequal size.
GROUPS = [f"sub{g}" for g in range(14) for _ in range(150 + 7 * g)]


def _same_group_partners(order: list[int], batch_size: int) -> np.ndarray:
    groups = np.asarray(GROUPS)
    partners = []
    for start in range(0, len(order) - batch_size + 1, batch_size):
        batch = groups[order[start:start + batch_size]]
        partners += [(batch == g).sum() - 1 for g in batch]
    return np.asarray(partners)


def test_runs_of_one_subcategory_give_each_product_its_hard_negatives():
    grouped = list(GroupedEpochSampler(GROUPS, 8, seed=0))
    assert sorted(grouped) == list(range(len(GROUPS)))           # every product once per epoch
    hard = _same_group_partners(grouped, 32)
    uniform = _same_group_partners(list(EpochSampler(len(GROUPS), seed=0)), 32)
    assert np.median(hard) >= 7 and (hard >= 6).mean() > 0.9
    assert np.median(uniform) <= 3                                # what a shuffled batch of 32 holds


def test_the_grouped_order_is_seeded_per_epoch():
    sampler = GroupedEpochSampler(GROUPS, 8, seed=3)
    first = list(sampler)
    assert list(GroupedEpochSampler(GROUPS, 8, seed=3)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(sampler) == sorted(first)


@pytest.mark.parametrize("key", ["pretrain.same_subcategory", "finetune.xmr.same_subcategory"])
def test_a_run_of_one_product_is_refused_naming_the_field(key):
    with pytest.raises(ConfigError, match=key.split(".")[-1]):
        load_params(REPO / "params.yaml", overrides=[f"{key}=1"])
