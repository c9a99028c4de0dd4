"""Command-line parsing for ``wsstream``: the argument parser, :class:`Options`, and the translation of flags into
the keyword arguments of :func:`wsstream.connect` and :func:`wsstream.serve` (TLS contexts included).

Usage errors raise :class:`UsageError` (exit status 2); nothing here touches the network.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import __version__

__all__ = ["DEFAULT_LISTEN_HOST", "Options", "UsageError", "parse_args", "parse_hostport"]

#: Listeners bind to loopback unless told otherwise: ``--exec`` would otherwise hand a shell to the network.
DEFAULT_LISTEN_HOST = "127.0.0.1"

Mode = Literal["text", "binary"]

_SIZE_SUFFIXES = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}


class UsageError(Exception):
    """The command line is inconsistent; the message is shown after ``wsstream:``."""


@dataclass
class Options:
    """Everything the command line says, validated."""

    command: Literal["client", "listen", "exec", "forward", "tcp-listen"]
    url: str | None = None
    listen: tuple[str, int] | None = None
    exec_argv: list[str] = field(default_factory=list)
    forward: tuple[str, int] | None = None
    mode: Mode = "text"
    proxy: str | Literal[True] | None = True
    cacert: str | None = None
    insecure: bool = False
    cert: str | None = None
    key: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    subprotocols: list[str] = field(default_factory=list)
    origin: list[str] = field(default_factory=list)
    compress: bool | None = None
    ping_interval: float | None = None
    ping_interval_set: bool = False
    max_size: int | None = 100 * 2**20
    progress: bool = False
    oneshot: bool = False
    no_close: bool = False
    linger: float | None = 0.0
    verbosity: int = 0

    def client_ssl(self) -> ssl.SSLContext | None:
        """The SSLContext for ``wss://`` connections, or None to let the library build its verifying default."""
        if self.cacert is None and not self.insecure and self.cert is None:
            return None
        context = ssl.create_default_context(cafile=self.cacert)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert is not None:
            context.load_cert_chain(self.cert, self.key)
        return context

    def server_ssl(self) -> ssl.SSLContext | None:
        """The SSLContext of a TLS listener (``--cert``/``--key``); ``--cacert`` then requires client certificates."""
        if self.cert is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        if self.cacert is not None:
            context.load_verify_locations(self.cacert)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def connect_kwargs(self, url: str) -> dict[str, Any]:
        """Keyword arguments of :func:`wsstream.connect` for ``url``."""
        kwargs: dict[str, Any] = {
            "proxy": self.proxy,
            "headers": self.headers or None,
            "subprotocols": self.subprotocols or None,
            "origin": self.origin[0] if self.origin else None,
            "max_size": self.max_size,
        }
        if self.compress is not None:
            kwargs["compression"] = "deflate" if self.compress else None
        if self.ping_interval_set:
            kwargs["ping_interval"] = self.ping_interval
        if url.lower().startswith(("wss:", "https:")):
            context = self.client_ssl()
            if context is not None:
                kwargs["ssl"] = context
        return kwargs

    def serve_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`wsstream.serve` (without handler, host and port)."""
        kwargs: dict[str, Any] = {
            "subprotocols": self.subprotocols or None,
            "origins": self.origin or None,
            "max_size": self.max_size,
            "ssl": self.server_ssl(),
        }
        if self.compress:
            kwargs["compression"] = "deflate"
        if self.ping_interval_set:
            kwargs["ping_interval"] = self.ping_interval
        return kwargs


def parse_hostport(text: str, default_host: str | None) -> tuple[str, int]:
    """``[HOST:]PORT`` (``[::1]:80`` for IPv6) -> (host, port); HOST is required when ``default_host`` is None."""
    host: str | None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise UsageError(f"bad address {text!r}: expected [HOST]:PORT")
        port_text = rest[1:]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        if ":" in host:
            raise UsageError(f"bad address {text!r}: put an IPv6 address in brackets, [::1]:PORT")
    else:
        host, port_text = None, text
    if not host:
        if default_host is None:
            raise UsageError(f"bad address {text!r}: expected HOST:PORT")
        host = default_host
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"bad port in {text!r}")
    return host, int(port_text)


def _parse_size(text: str) -> int:
    """``1048576``, ``64k``, ``16M``, ``1g`` -> bytes (binary multiples)."""
    number, suffix = text, ""
    if text and text[-1].lower() in _SIZE_SUFFIXES:
        number, suffix = text[:-1], text[-1].lower()
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(number) * _SIZE_SUFFIXES[suffix]


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or any(c in name for c in " \t\r\n"):
        raise argparse.ArgumentTypeError(f"bad header {text!r}: expected 'Name: value'")
    if "\r" in value or "\n" in value:
        raise argparse.ArgumentTypeError(f"bad header {text!r}: no line breaks allowed")
    return name, value.strip()


def _parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``wsstream`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="wsstream",
        description="WebSocket client, server and tunnel: pipe stdin/stdout, a command or a TCP port "
        "through a WebSocket.",
        epilog="modes:\n"
        "  wsstream URL                            stdin lines -> text messages, messages -> stdout lines\n"
        "  wsstream --binary URL                   raw bytes both ways; stdin EOF closes\n"
        "  wsstream -l [HOST:]PORT                 serve: messages -> stdout, stdin -> the client(s)\n"
        "  wsstream -l [HOST:]PORT --exec CMD...   run CMD per connection, piped to the WebSocket\n"
        "  wsstream -l [HOST:]PORT --forward H:P   each WebSocket <-> a new TCP connection to H:P\n"
        "  wsstream --tcp-listen [HOST:]PORT URL   each TCP connection <-> a new WebSocket to URL\n"
        f"listeners bind to {DEFAULT_LISTEN_HOST} unless HOST is given.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", nargs="?", metavar="URL", help="ws://, wss://, ws+unix:// (or http(s)://) URL")
    parser.add_argument("--version", action="version", version=f"wsstream {__version__}")
    where = parser.add_argument_group("modes")
    where.add_argument("-l", "--listen", metavar="[HOST:]PORT", help="serve WebSocket connections")
    where.add_argument("--exec", dest="exec_argv", nargs=argparse.REMAINDER, metavar="CMD",
                       help="with -l: run CMD per connection (must come last; one argument is shlex-split)")
    where.add_argument("--forward", metavar="HOST:PORT", help="with -l: forward each connection to a TCP port")
    where.add_argument("--tcp-listen", metavar="[HOST:]PORT", help="accept TCP connections, tunnel each to URL")
    where.add_argument("--oneshot", action="store_true",
                       help="serve one connection, then exit (text client: wait for the first message, print it, "
                       "close; stdin EOF does not close)")
    where.add_argument("--no-close", action="store_true",
                       help="do not close at stdin EOF; wait for the peer to close")
    where.add_argument("--linger", type=_parse_seconds, default=0.0, metavar="SECONDS",
                       help="at stdin EOF, wait until nothing has arrived for SECONDS before closing "
                       "(replies still in flight are not cut off; default 0)")
    data = parser.add_argument_group("data")
    data.add_argument("--text", dest="mode", action="store_const", const="text",
                      help="lines <-> text messages (default, except --forward/--tcp-listen)")
    data.add_argument("--binary", dest="mode", action="store_const", const="binary",
                      help="raw bytes <-> binary messages")
    data.add_argument("--compress", dest="compress", action="store_true", default=None,
                      help="offer/accept permessage-deflate (client default: on; server default: off)")
    data.add_argument("--no-compress", dest="compress", action="store_false", help="no permessage-deflate")
    data.add_argument("--max-size", type=_parse_size, default=100 * 2**20, metavar="BYTES",
                      help="largest message accepted, e.g. 16M (0: no limit; default 100M)")
    data.add_argument("--ping-interval", type=_parse_seconds, metavar="SECONDS",
                      help="keepalive ping interval (0 disables; default 20)")
    data.add_argument("--progress", action="store_true", help="show bytes and rate on stderr")
    net = parser.add_argument_group("connection")
    net.add_argument("-H", "--header", dest="headers", action="append", type=_parse_header, default=[],
                     metavar="'NAME: VALUE'", help="add a request header (repeatable)")
    net.add_argument("--subprotocol", dest="subprotocols", action="append", default=[], metavar="NAME",
                     help="offer (client) or accept (server) a subprotocol (repeatable)")
    net.add_argument("--origin", action="append", default=[],
                     help="client: the Origin header; server: an allowed Origin (repeatable)")
    net.add_argument("--proxy", metavar="URL", help="http://, https://, socks4(a)://, socks5(h):// proxy")
    net.add_argument("--no-proxy", action="store_true", help="ignore proxy environment variables")
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--cacert", metavar="FILE", help="trust these CA certificates (server: require client certs)")
    tls.add_argument("--insecure", action="store_true", help="do not verify the server certificate")
    tls.add_argument("--cert", metavar="FILE", help="certificate chain (client certificate, or serve wss://)")
    tls.add_argument("--key", metavar="FILE", help="private key of --cert (if not in the same file)")
    out = parser.add_argument_group("output")
    out.add_argument("-q", "--quiet", action="count", default=0, help="only print errors")
    out.add_argument("-v", "--verbose", action="count", default=0, help="log connections (-vv: protocol debug)")
    return parser


def parse_args(argv: list[str]) -> Options:
    """Parse and validate ``argv``; raises :class:`UsageError` (or SystemExit for --help/--version)."""
    ns = build_parser().parse_args(argv)
    listen = ns.listen is not None
    if ns.exec_argv is not None and not ns.exec_argv:
        raise UsageError("--exec needs a command")
    exec_argv: list[str] = list(ns.exec_argv or [])
    if len(exec_argv) == 1:
        exec_argv = shlex.split(exec_argv[0])
        if not exec_argv:
            raise UsageError("--exec needs a command")
    if exec_argv and shutil.which(exec_argv[0]) is None:
        raise UsageError(f"--exec: command not found: {exec_argv[0]}")
    if exec_argv and ns.forward:
        raise UsageError("--exec and --forward exclude each other")
    if (exec_argv or ns.forward) and not listen:
        raise UsageError("--exec and --forward need -l [HOST:]PORT")
    if listen and ns.tcp_listen:
        raise UsageError("-l and --tcp-listen exclude each other")
    if listen and ns.url:
        raise UsageError("-l takes no URL (did you mean --tcp-listen?)")
    if not listen and not ns.url:
        raise UsageError("a URL is required (or -l [HOST:]PORT to listen)")
    if ns.proxy and ns.no_proxy:
        raise UsageError("--proxy and --no-proxy exclude each other")
    if ns.key and not ns.cert:
        raise UsageError("--key needs --cert")
    if listen and (ns.headers or ns.proxy or ns.no_proxy or ns.insecure):
        raise UsageError("-H, --proxy, --no-proxy and --insecure apply to clients, not to -l")
    if listen and ns.cacert and not ns.cert:
        raise UsageError("--cacert with -l requires client certificates and needs --cert/--key")

    command: Literal["client", "listen", "exec", "forward", "tcp-listen"]
    if exec_argv:
        command = "exec"
    elif ns.forward:
        command = "forward"
    elif listen:
        command = "listen"
    elif ns.tcp_listen:
        command = "tcp-listen"
    else:
        command = "client"
    default_mode: Mode = "binary" if command in ("forward", "tcp-listen") else "text"
    ping_interval = None if ns.ping_interval in (None, 0) else ns.ping_interval
    return Options(
        command=command,
        url=ns.url,
        listen=(
            parse_hostport(ns.listen, DEFAULT_LISTEN_HOST) if listen
            else parse_hostport(ns.tcp_listen, DEFAULT_LISTEN_HOST) if ns.tcp_listen
            else None
        ),
        exec_argv=exec_argv,
        forward=parse_hostport(ns.forward, None) if ns.forward else None,
        mode=ns.mode or default_mode,
        proxy=None if ns.no_proxy else (ns.proxy or True),
        cacert=ns.cacert,
        insecure=ns.insecure,
        cert=ns.cert,
        key=ns.key,
        headers=ns.headers,
        subprotocols=ns.subprotocols,
        origin=ns.origin,
        compress=ns.compress,
        ping_interval=ping_interval,
        ping_interval_set=ns.ping_interval is not None,
        max_size=ns.max_size or None,
        progress=ns.progress,
        oneshot=ns.oneshot,
        no_close=ns.no_close,
        linger=None if ns.no_close else ns.linger,
        verbosity=ns.verbose - ns.quiet,
    )
