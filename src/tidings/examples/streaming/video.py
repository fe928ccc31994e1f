"""The video service: publishes ``video.watch_started`` when a user presses play."""

from __future__ import annotations

from tidings import Bus

from .events import VideoWatchStarted

__all__ = ["GENRES", "make_watch", "start_watching"]

GENRES = ("drama", "comedy", "documentary", "anime", "thriller")


def make_watch(number: int, seed: int) -> VideoWatchStarted:
    """The `number`-th watch of a run: ids ``w-00001``..., a user, a video and its genre."""
    return VideoWatchStarted(
        watch_id=f"w-{number:05d}",
        user_id=f"u-{(number * 13 + seed) % 25 + 1:03d}",
        video_id=f"v-{(number * 31 + seed) % 60 + 1:03d}",
        genre=GENRES[(number * 17 + seed) % len(GENRES)],
    )


async def start_watching(bus: Bus, watch: VideoWatchStarted) -> str:
    """Publish `watch`, keyed by user so one user's events stay in order."""
    return await bus.publish(watch, key=watch.user_id)
