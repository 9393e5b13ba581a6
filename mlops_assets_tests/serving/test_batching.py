"""The micro-batcher: queued submissions share calls, a failing batch fails only its culprit."""

from __future__ import annotations

import asyncio

import pytest

from mlops_assets.serving.batching import MicroBatcher


def run_submissions(batcher: MicroBatcher, items: list[int], sizes: list[int]) -> list[object]:
    async def run() -> list[object]:
        tasks = [
            asyncio.ensure_future(batcher.submit(i, s)) for i, s in zip(items, sizes, strict=True)
        ]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        batcher.close()
        return results

    return asyncio.run(run())


def test_queued_items_share_calls_and_keep_their_results() -> None:
    calls: list[list[int]] = []

    def handle(items: list[int]) -> list[int]:
        calls.append(items)
        return [item * 10 for item in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(handle)
    results = run_submissions(batcher, list(range(20)), [1] * 20)
    assert results == [i * 10 for i in range(20)]
    assert calls == [list(range(20))]


def test_items_arriving_during_a_batch_form_the_next_one() -> None:
    calls: list[list[int]] = []

    async def run() -> list[int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(lambda items: calls.append(items) or items)
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 5)]
        results = await asyncio.gather(first, *rest)
        batcher.close()
        return results

    assert asyncio.run(run()) == [0, 1, 2, 3, 4]
    assert calls == [[0], [1, 2, 3, 4]]


def test_batches_respect_the_size_cap() -> None:
    calls: list[list[int]] = []
    batcher: MicroBatcher[int, int] = MicroBatcher(
        lambda items: calls.append(items) or items, max_batch_size=10
    )
    run_submissions(batcher, list(range(6)), [4] * 6)
    assert calls == [[0, 1], [2, 3], [4, 5]]


def test_a_failing_item_does_not_fail_its_batch() -> None:
    def handle(items: list[int]) -> list[int]:
        if 3 in items:
            raise ValueError("three is bad")
        return items

    seen: list[tuple[int, int]] = []
    batcher: MicroBatcher[int, int] = MicroBatcher(
        handle, max_wait_ms=5, on_batch=lambda n, size: seen.append((n, size))
    )
    results = run_submissions(batcher, list(range(6)), [1] * 6)
    assert [r for r in results if not isinstance(r, Exception)] == [0, 1, 2, 4, 5]
    with pytest.raises(ValueError, match="three is bad"):
        raise results[3]  # type: ignore[misc]
    assert seen[0] == (6, 6) and len(seen) == 7
