"""`tidings replay`: retained events delivered to a group again."""

from __future__ import annotations

from .conftest import cli, declare, group_stats


def test_replay_rejects_a_bad_time(db_url: str) -> None:
    result = cli("replay", "alpha", "--since", "yesterday-ish", "--url", db_url)
    assert result.exit_code == 2
    assert "yesterday-ish" in result.stderr


def test_replay_of_an_unknown_group_is_an_error(db_url: str) -> None:
    result = cli("replay", "nope", "--since", "1h", "--url", db_url)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "nope" in result.stderr


def test_replay_puts_retained_events_back(db_url: str) -> None:
    # Given a group whose events were consumed long ago... here: two events waiting
    declare(db_url, "alpha")
    for _ in range(2):
        assert cli("publish", "test.one", "--url", db_url).exit_code == 0

    # When the group is replayed from the last hour
    result = cli("replay", "alpha", "--since", "1h", "--url", db_url)

    # Then both retained events are delivered again
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("replayed 2 event(s) to alpha")
    assert group_stats(db_url)["alpha"]["ready"] == 4
