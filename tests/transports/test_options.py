"""Options: every transport takes the common settings plus its own typed options, and refuses
a keyword it does not know (one line naming it) before it connects or touches anything."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tidings import Bus, ConfigError
from tidings.transports import (
    COMMON_OPTIONS,
    ManualClock,
    TransportOptions,
    open_transport,
    split_options,
)
from tidings.transports.rabbitmq import RabbitMQOptions
from tidings.transports.sqlite import SqliteOptions

# A port nothing listens on: a transport that tried to connect would fail differently.
NOWHERE = "amqp://guest:guest@127.0.0.1:9/"


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("memory://options", "none"),
        ("sqlite:///{tmp}/bus.db", "busy_timeout, cleanup_interval, durable_settle"),
        (NOWHERE, "management_url, partitions, publish_timeout, queue_type"),
        (NOWHERE.replace("amqp", "amqps"), "management_url, partitions"),
    ],
)
def test_an_unknown_option_is_refused_in_one_line_naming_it(
    url: str, accepted: str, tmp_path: Path
) -> None:
    # Given a transport URL; When it is opened with a misspelt option among good ones
    url = url.format(tmp=tmp_path)
    with pytest.raises(ConfigError) as refused:
        open_transport(url, {"name": "shop", "lease": 5.0, "partitons": 8, "colour": "red"})
    # Then one line names both unknown keys and lists the accepted ones
    message = str(refused.value)
    assert "\n" not in message
    assert "unknown" in message and "option(s) colour, partitons; known: " in message
    assert accepted in message
    # And nothing was created on disk
    assert list(tmp_path.iterdir()) == []


async def test_a_bus_with_a_misspelt_option_does_not_open() -> None:
    bus = Bus(f"memory://{uuid.uuid4().hex}", partitons=8)
    with pytest.raises(ConfigError, match="unknown memory option\\(s\\) partitons"):
        await bus.start()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue_type": "lazy"}, "queue_type must be 'classic' or 'quorum', not 'lazy'"),
        ({"partitions": 0}, "partitions must be a positive integer, not 0"),
        ({"partitions": True}, "partitions must be a positive integer, not True"),
        ({"publish_timeout": -1}, "publish_timeout must be a positive number of seconds"),
        ({"reconnect_interval": "1s"}, "reconnect_interval must be a positive number"),
    ],
)
def test_bad_rabbitmq_values_are_refused_before_connecting(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        open_transport(NOWHERE, options)


def test_good_options_reach_the_transports_typed() -> None:
    transport = open_transport(
        NOWHERE,
        {"name": "shop", "queue_type": "quorum", "partitions": 2, "publish_timeout": 5},
    )
    assert transport.options.name == "shop"
    assert transport.settings == RabbitMQOptions(
        queue_type="quorum", partitions=2, publish_timeout=5.0
    )
    assert SqliteOptions(wake=False).wake is False


def test_split_options_keeps_the_common_settings_and_types_the_rest() -> None:
    @dataclass(frozen=True)
    class Mine:
        depth: int = 1

    clock = ManualClock()
    common, own = split_options(
        {"name": "shop", "lease": 2.0, "clock": clock, "depth": 3}, Mine, transport="mine"
    )
    assert common == TransportOptions(name="shop", lease=2.0, clock=clock)
    assert own == Mine(depth=3)
    assert {
        "name",
        "lease",
        "retention",
        "max_message_size",
        "dedupe_url",
        "dedupe_ttl",
        "clock",
        "on_unroutable",
    } == COMMON_OPTIONS
    with pytest.raises(ConfigError, match="unknown mine option\\(s\\) dpeth; known: depth"):
        split_options({"dpeth": 3}, Mine, transport="mine")


WITHOUT_AIO_PIKA = """
    import sys

    class Missing:
        # Pretend the rabbitmq extra is not installed.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("aio_pika", "aiormq", "pamqp"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Missing())

    from tidings import ConfigError
    from tidings.transports import open_transport
    from tidings.transports.rabbitmq import RabbitMQOptions

    assert RabbitMQOptions(partitions=2).partitions == 2
    for options in ({"partitons": 8}, {"partitions": 2}):
        try:
            open_transport("amqp://localhost/", options)
        except ConfigError as exc:
            print(exc)
    assert "aio_pika" not in sys.modules
"""


def test_options_are_checked_without_the_driver_and_a_missing_driver_says_what_to_install(
    tmp_path: Path,
) -> None:
    script = tmp_path / "no_driver.py"
    script.write_text(textwrap.dedent(WITHOUT_AIO_PIKA))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    unknown, missing = result.stdout.splitlines()
    assert unknown.startswith("unknown rabbitmq option(s) partitons; known: ")
    assert missing.startswith("the amqp:// transport needs extra packages (")
    assert missing.endswith("pip install 'tidings[rabbitmq]'")
