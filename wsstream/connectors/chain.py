"""Proxy chains: several hops, each opening its tunnel through the previous one's.

Hop *i* is asked for a tunnel to hop *i+1*'s proxy, and the last hop for one to the origin. The first hop may
be any :class:`~wsstream.connectors.Connector` (a ``UnixConnector`` reaching a proxy on a Unix socket, a
connector of your own): it is simply asked to connect to the second hop's proxy. Every later hop must be a
proxy connector (HTTP, SOCKS or a nested chain), since it has to speak over a tunnel it did not open.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..exceptions import ProxyError
from .base import Attempt, Connector, Pipe, TunnelConnector, format_address
from .direct import describe_os_error

__all__ = ["ProxyChain"]


class ProxyChain(TunnelConnector):
    """Connect through ``hops`` in order (see the module docstring for which connectors can be hops)."""

    __slots__ = ("hops", "label")

    def __init__(self, hops: Sequence[Connector]) -> None:
        self.hops = list(hops)
        if not self.hops:
            raise ValueError("a proxy chain needs at least one hop")
        for index, hop in enumerate(self.hops[1:], 2):
            if not isinstance(hop, TunnelConnector):
                raise TypeError(f"hop {index} ({hop!r}) cannot run over another hop's tunnel")
            # A nested chain as a later hop must itself start with a proxy.
            hop.first_address  # noqa: B018
        self.label = " -> ".join(getattr(hop, "label", repr(hop)) for hop in self.hops)

    def __repr__(self) -> str:
        return f"ProxyChain({self.hops!r})"

    @property
    def first_address(self) -> tuple[str, int]:
        first = self.hops[0]
        if not isinstance(first, TunnelConnector):
            raise TypeError(f"a chain starting with {first!r} cannot run over another hop's tunnel")
        return first.first_address

    async def open_tunnel(
        self, host: str, port: int, attempt: Attempt, *, via: Pipe | None = None, name: str | None = None
    ) -> Pipe:
        """Open each hop's tunnel in turn; the last one reaches ``host:port``."""
        count = len(self.hops)
        prefix = f"{name}, " if name else ""
        pipe = via
        for index, hop in enumerate(self.hops):
            last = index == count - 1
            next_host, next_port = (host, port) if last else _first_address(self.hops[index + 1])
            hop_name = f"{prefix}proxy {index + 1}/{count} {getattr(hop, 'label', repr(hop))}"
            if isinstance(hop, TunnelConnector):
                pipe = await hop.open_tunnel(next_host, next_port, attempt, via=pipe, name=hop_name)
            else:
                next_name = f"{prefix}proxy {index + 2}/{count} {getattr(self.hops[index + 1], 'label', '')}"
                pipe = await _dial(hop, next_host, next_port, next_name, attempt)
        assert pipe is not None
        return pipe


def _first_address(hop: Connector) -> tuple[str, int]:
    assert isinstance(hop, TunnelConnector)
    return hop.first_address


async def _dial(connector: Connector, host: str, port: int, name: str, attempt: Attempt) -> Pipe:
    """Ask a plain connector for a connection to a proxy, as the first hop of a chain."""
    attempt.step = f"{name}: connecting through {connector!r}"
    try:
        _, pipe = await connector.connect(Pipe, host, port, ssl=None, server_hostname=None, timeout=attempt.remaining())
    except ProxyError:
        raise
    except OSError as exc:
        raise ProxyError(f"{name}: {describe_os_error(exc)} (via {connector!r})") from exc
    assert isinstance(pipe, Pipe)
    if not hasattr(pipe, "transport"):
        target = format_address(host, port)
        raise ProxyError(f"{name}: {connector!r} did not connect its protocol to {target}")
    return pipe
