"""The streaming service's events."""

from __future__ import annotations

from tidings import Event

__all__ = ["AnalyticsRecorded", "NotificationSent", "RecommendationUpdated", "VideoWatchStarted"]


class VideoWatchStarted(Event, type="video.watch_started", version=1):
    """A user pressed play (published by the video service)."""

    watch_id: str
    user_id: str
    video_id: str
    genre: str


class RecommendationUpdated(Event, type="recommendation.updated", version=1):
    """The recommendation service updated a user's preferences after a watch."""

    watch_id: str
    user_id: str
    top_genres: list[str]


class NotificationSent(Event, type="notification.sent", version=1):
    """The notification service pushed something to a user (an outcome event)."""

    watch_id: str
    user_id: str
    kind: str  # "watch" or "recommendation"


class AnalyticsRecorded(Event, type="analytics.recorded", version=1):
    """The analytics service stored a video event (an outcome event)."""

    watch_id: str
    event_type: str
