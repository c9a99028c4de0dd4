"""Command-line parsing (in process): addresses, sizes, --exec splitting, and what reaches connect()."""

from __future__ import annotations

import pytest

from wsstream.cli.options import UsageError, parse_args, parse_hostport


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:0", ("::1", 0)),
        (":9000", ("127.0.0.1", 9000)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text, "127.0.0.1") == expected


@pytest.mark.parametrize("text", ["", "host:", "host:port", "::1:80", "[::1]80", "1:65536"])
def test_parse_hostport_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_hostport(text, "127.0.0.1")


def test_exec_takes_the_rest_and_splits_one_string() -> None:
    assert parse_args(["-l", "80", "--exec", "cat", "-n", "--binary"]).exec_argv == ["cat", "-n", "--binary"]
    opts = parse_args(["-l", "80", "--binary", "--exec", "grep -i 'a b'"])
    assert (opts.command, opts.mode, opts.exec_argv) == ("exec", "binary", ["grep", "-i", "a b"])


def test_mode_defaults_per_command() -> None:
    assert parse_args(["ws://h/"]).mode == "text"
    assert parse_args(["-l", "80", "--forward", "h:22"]).mode == "binary"
    assert parse_args(["--tcp-listen", "2222", "ws://h/"]).mode == "binary"
    assert parse_args(["--text", "--tcp-listen", "2222", "ws://h/"]).mode == "text"


def test_connect_kwargs() -> None:
    opts = parse_args(["--no-proxy", "-H", "A: 1", "-H", "B:2", "--max-size", "16M", "--ping-interval", "0",
                       "--no-compress", "--subprotocol", "x", "wss://h/"])
    kwargs = opts.connect_kwargs("wss://h/")
    assert kwargs == {
        "proxy": None, "headers": [("A", "1"), ("B", "2")], "subprotocols": ["x"], "origin": None,
        "max_size": 16 * 2**20, "compression": None, "ping_interval": None,
    }
    # Defaults are the library's: nothing forced that the user did not ask for.
    assert parse_args(["ws://h/"]).connect_kwargs("ws://h/") == {
        "proxy": True, "headers": None, "subprotocols": None, "origin": None, "max_size": 100 * 2**20,
    }


def test_insecure_context_does_not_verify() -> None:
    context = parse_args(["--insecure", "wss://h/"]).connect_kwargs("wss://h/")["ssl"]
    assert context.check_hostname is False
    assert context.verify_mode.name == "CERT_NONE"
