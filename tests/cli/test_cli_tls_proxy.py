"""The CLI's TLS flags (--cacert, --insecure, -l --cert/--key), --proxy, and --progress, end to end."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

import wsstream
from tests.cli.cli_support import TIMEOUT, cli, exchange, finish, free_port, listening_port, run_cli
from tests.proxy_servers import ProxyUnavailable, start_tinyproxy
from tests.support import echo, skip_or_fail

pytestmark = pytest.mark.timeout(30)


@dataclass
class Pki:
    ca: trustme.CA
    ca_file: Path
    cert_file: Path
    key_file: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("cli-pki")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    for index, pem in enumerate(leaf.cert_chain_pems):
        pem.write_to_path(str(cert_file), append=index > 0)
    return Pki(ca, ca_file, cert_file, key_file)


@pytest.fixture
async def wss_echo_url(pki: Pki) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    async with wsstream.serve(echo, "127.0.0.1", 0, ssl=context) as server:
        yield f"wss://127.0.0.1:{server.port}/"


async def test_cacert_trusts_the_server(pki: Pki, wss_echo_url: str) -> None:
    status, replies, err = await exchange("--no-proxy", "--cacert", str(pki.ca_file), wss_echo_url,
                                          lines=[b"over tls"])
    assert (status, replies, err) == (0, [b"over tls\n"], b"")


async def test_unknown_ca_fails_with_one_line(wss_echo_url: str) -> None:
    status, out, err = await run_cli("--no-proxy", wss_echo_url, input=b"x\n")
    assert status == 1
    assert out == b""
    assert err.startswith(b"wsstream: TLS certificate verification failed: 127.0.0.1:")
    assert err.count(b"\n") == 1


async def test_insecure_skips_verification(wss_echo_url: str) -> None:
    status, replies, _ = await exchange("--no-proxy", "--insecure", wss_echo_url, lines=[b"risky"])
    assert (status, replies) == (0, [b"risky\n"])


async def test_listen_with_cert_serves_wss(pki: Pki) -> None:
    async with cli("-l", "127.0.0.1:0", "--cert", str(pki.cert_file), "--key", str(pki.key_file),
                   "--exec", "cat") as server:
        assert server.stderr is not None
        port = await listening_port(server)
        context = ssl.create_default_context(cafile=str(pki.ca_file))
        async with wsstream.connect(f"wss://127.0.0.1:{port}/", ssl=context, proxy=None) as ws:
            await ws.send("secret")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "secret"
        assert await finish(server, stop=True) == (0, b"")


async def test_explicit_proxy_is_used(echo_uri: str) -> None:
    dead = free_port()
    status, _, err = await run_cli("--proxy", f"http://127.0.0.1:{dead}", echo_uri, input=b"x\n")
    assert status == 1  # the (dead) proxy was dialled, not the reachable server
    assert err.count(b"\n") == 1 and str(dead).encode() in err

    try:
        proxy = await asyncio.to_thread(start_tinyproxy)
    except ProxyUnavailable as exc:
        skip_or_fail(str(exc))
    try:
        status, replies, err = await exchange("--proxy", proxy.url("http"), echo_uri, lines=[b"via proxy"])
    finally:
        await asyncio.to_thread(proxy.stop)
    assert (status, replies, err) == (0, [b"via proxy\n"], b"")


async def test_progress_reports_totals_on_stderr(echo_uri: str) -> None:
    payload = bytes(300_000)
    async with cli("--no-proxy", "--binary", "--no-close", "--progress", echo_uri) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(payload)
        assert await asyncio.wait_for(proc.stdout.readexactly(len(payload)), TIMEOUT) == payload
        status, err = await finish(proc, stop=True)
    assert status == 0
    last = err.decode().splitlines()[-1]
    assert last.startswith("wsstream: sent 293.0 KiB (") and "received 293.0 KiB (" in last
