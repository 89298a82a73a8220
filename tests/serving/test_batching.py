"""The micro-batcher on its own: batch limits, waiting, errors reaching every request of a batch."""

import asyncio
import time

from fashionvlp.serving.batching import MicroBatcher, Unbatched


def run(coro):
    return asyncio.run(coro)


def test_concurrent_items_share_calls_up_to_the_batch_size():
    calls = []

    def double(items):
        calls.append(list(items))
        return [2 * i for i in items]

    async def main():
        batcher = MicroBatcher("t", double, max_batch_size=4, max_wait_ms=50)
        out = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await batcher.stop()
        return out

    assert run(main()) == [2 * i for i in range(10)]
    assert all(len(c) <= 4 for c in calls) and len(calls) == 3 and sorted(sum(calls, [])) == list(range(10))


def test_a_lone_item_waits_at_most_max_wait():
    async def main():
        batcher = MicroBatcher("t", lambda items: items, max_batch_size=64, max_wait_ms=30)
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await batcher.submit("x") == "x"
        elapsed = loop.time() - start
        await batcher.stop()
        return elapsed

    assert run(main()) < 1.0         # bounded by max_wait, not by the batch filling up


def test_a_bad_item_fails_only_its_own_request_and_the_batcher_goes_on():
    calls = []

    def flaky(items):
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("bad item in batch")
        return items

    async def main():
        batcher = MicroBatcher("t", flaky, max_batch_size=8, max_wait_ms=20)
        first = await asyncio.gather(batcher.submit("a"), batcher.submit("bad"), return_exceptions=True)
        second = await batcher.submit("c")
        await batcher.stop()
        return first, second

    first, second = run(main())
    assert first[0] == "a" and isinstance(first[1], ValueError) and second == "c"
    assert calls[0] == ["a", "bad"] and ["a"] in calls and ["bad"] in calls   # merged, then each on its own


def test_unbatched_runs_one_item_per_call():
    calls = []

    def record(items):
        calls.append(len(items))
        return items

    async def main():
        return await Unbatched("t", record).submit_many([1, 2, 3])

    assert run(main()) == [1, 2, 3] and calls == [1, 1, 1]


def test_drain_finishes_queued_and_running_items_before_stopping():
    def slow(items):
        time.sleep(0.05)
        return items

    async def main():
        batcher = MicroBatcher("t", slow, max_batch_size=2, max_wait_ms=1)
        pending = [asyncio.ensure_future(batcher.submit(i)) for i in range(6)]
        await asyncio.sleep(0)
        await batcher.drain(5.0)
        return await asyncio.wait_for(asyncio.gather(*pending), 5.0)

    assert run(main()) == list(range(6))
