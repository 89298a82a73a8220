"""fix_threads makes torch's kernels deterministic: the accumulating index_put_ (the backward of advanced
indexing) otherwise adds repeated indices with atomics in the order two threads happen to arrive."""

import torch

from fashionvlp.env import fix_threads


def _accumulate(index: torch.Tensor, values: torch.Tensor) -> bytes:
    out = torch.zeros(50, values.shape[1])
    out.index_put_((index,), values, accumulate=True)
    return out.numpy().tobytes()


def test_accumulating_index_put_gives_the_same_bits_every_time_on_two_threads():
    previous = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    try:
        generator = torch.Generator().manual_seed(0)
        index = torch.randint(0, 50, (4000,), generator=generator)   # many repeats per row
        values = torch.randn(4000, 384, generator=generator)           # over torch's parallel grain
        assert fix_threads(2)["torch_threads"] == 2
        assert torch.are_deterministic_algorithms_enabled()
        assert len({_accumulate(index, values) for _ in range(20)}) == 1
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])
