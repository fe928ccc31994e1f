"""Acceptance: per-key ordering on the embedded broker, and retries that hold back one key."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tidings import Bus, Context, Event, Retry


class Step(Event, type="order.step"):
    key: str
    seq: int


async def test_thousand_events_over_ten_keys_keep_publish_order_per_key(tmp_path: Path) -> None:
    bus = Bus(f"sqlite:///{tmp_path / 'bus.db'}")
    handled: list[tuple[str, int, int]] = []  # (key, seq, attempt) in handling order
    done = asyncio.Event()
    total = 1000
    failing = {("k3", 10), ("k7", 50)}  # fail once each, retried after a short back-off

    @bus.subscribe(
        "order.step", group="ordered", ordered=True, concurrency=16, retry=Retry(base=0.2)
    )
    async def handle(event: Step, ctx: Context) -> None:
        handled.append((event.key, event.seq, ctx.attempt))
        await asyncio.sleep(0)  # let other keys interleave
        if (event.key, event.seq) in failing and ctx.attempt == 1:
            raise RuntimeError("transient")
        if sum(1 for _, _, a in handled if a) >= total + len(failing):
            done.set()

    async with bus:
        for start in range(0, total, 100):
            await asyncio.gather(
                *(
                    bus.publish(Step(key=f"k{n % 10}", seq=n // 10), key=f"k{n % 10}")
                    for n in range(start, start + 100)
                )
            )
        await asyncio.wait_for(done.wait(), 60)

    # every key's successful runs are in publish order, nothing lost or run twice
    succeeded = [(k, s) for k, s, a in handled if (k, s) not in failing or a == 2]
    assert len(succeeded) == total
    for key in {f"k{i}" for i in range(10)}:
        seqs = [s for k, s in succeeded if k == key]
        assert seqs == list(range(100)), key
    # while a failed event waited for its retry, its own key held back, other keys went on
    for key, seq in failing:
        first = handled.index((key, seq, 1))
        retry = handled.index((key, seq, 2))
        between = handled[first + 1 : retry]
        assert all(k != key for k, _, _ in between), f"{key} was not held back"
        assert any(k != key for k, _, _ in between), "other keys did not go on"
