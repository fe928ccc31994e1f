"""`tidings publish`: the data it accepts and the errors it reports (what a worker receives
is in test_run)."""

from __future__ import annotations

from pathlib import Path

from .conftest import cli, declare, group_stats


def test_publish_rejects_data_that_is_not_json(db_url: str) -> None:
    result = cli("publish", "test.ping", "--data", "{n: 1", "--url", db_url)
    assert result.exit_code == 2
    assert "--data" in result.stderr
    assert "not valid JSON" in result.stderr


def test_publish_rejects_json_that_is_not_an_object(db_url: str) -> None:
    result = cli("publish", "test.ping", "--data", "[1, 2]", "--url", db_url)
    assert result.exit_code == 2
    assert "JSON object" in result.stderr


def test_publish_unroutable_is_an_error(db_url: str) -> None:
    result = cli("publish", "nobody.listens", "--data", "{}", "--url", db_url)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no group subscribes to 'nobody.listens'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_publish_reads_data_from_a_file_and_sends_to_one_group(db_url: str, tmp_path: Path) -> None:
    declare(db_url, "inbox")
    (tmp_path / "data.json").write_text('{"a": 1}')
    result = cli("publish", "test.cmd", "-d", f"@{tmp_path / 'data.json'}", "--to", "inbox",
                 "--url", db_url)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert group_stats(db_url)["inbox"]["ready"] == 1


def test_publish_to_a_missing_group_is_an_error(db_url: str) -> None:
    result = cli("publish", "test.cmd", "--to", "nowhere", "--url", db_url)
    assert result.exit_code == 1
    assert "no group named 'nowhere'" in result.stderr


def test_publish_refuses_a_bad_type(db_url: str) -> None:
    result = cli("publish", "order.*", "--url", db_url)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
