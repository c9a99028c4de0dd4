"""Start real proxy servers on loopback for the tests: tinyproxy, squid, dante, microsocks (Debian) and
tiny-proxy (PyPI, the one SOCKS4a server).

Each server runs in the foreground as a child process, on free ports, with a config file of its own in a
temporary directory, and is killed by ``stop()``. A missing binary raises :class:`ProxyUnavailable`; the
fixtures decide whether that skips or fails (``WSSTREAM_REQUIRE_ALL=1``). ``.ci/install-proxies.sh`` installs
every server.

Run as a script, this module is the tiny-proxy launcher:
``python tests/proxy_servers.py tiny-proxy KIND PORT [--auth USER:PASS] [--tls CERT KEY] [--map NAME=IP
...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "TEST_HOSTNAME",
    "ProxyServer",
    "ProxyUnavailable",
    "free_port",
    "start_dante",
    "start_microsocks",
    "start_squid",
    "start_tiny_proxy",
    "start_tinyproxy",
]

# A name that is not loopback (so the environment's proxy settings apply to it) and that the proxies below
# resolve to 127.0.0.1 (squid through its hosts_file, tiny-proxy through --map): the origin for environment
# tests.
TEST_HOSTNAME = "echo.wsstream.test"

READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


class ProxyUnavailable(Exception):
    """The proxy server cannot be started here (binary or package missing)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ProxyServer:
    """A running proxy server; ``ports`` by role (e.g. "plain", "auth", "tls"), ``stop()`` ends it."""

    name: str
    process: subprocess.Popen[bytes]
    ports: dict[str, int]
    workdir: Path | None = None
    log: Path | None = None
    # squid takes seconds to shut down gracefully; nothing of it is worth keeping, so it gets SIGKILL.
    stop_signal: int = signal.SIGTERM

    @property
    def port(self) -> int:
        return next(iter(self.ports.values()))

    def url(self, scheme: str, *, role: str | None = None, user: str | None = None, password: str | None = None) -> str:
        port = self.ports[role] if role else self.port
        auth = f"{user}:{password}@" if user is not None else ""
        return f"{scheme}://{auth}127.0.0.1:{port}"

    def log_text(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Terminate the server (its whole process group) and remove its directory."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, self.stop_signal)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _binary(name: str, *candidates: str) -> str:
    found = shutil.which(name) or next((c for c in candidates if os.access(c, os.X_OK)), None)
    if found is None:
        raise ProxyUnavailable(f"{name} is not installed (run .ci/install-proxies.sh)")
    return found


def _workdir(name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"wsstream-{name}-"))
    path.chmod(0o755)
    return path


def _spawn(name: str, argv: Sequence[str], ports: dict[str, int], workdir: Path | None) -> ProxyServer:
    """Start ``argv`` in its own process group and wait until every port accepts connections."""
    log = (workdir or Path(tempfile.gettempdir())) / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = ProxyServer(name, process, ports, workdir, log)
    deadline = time.monotonic() + READY_TIMEOUT
    pending = set(ports.values())
    while pending:
        if process.poll() is not None:
            text = server.log_text()
            server.stop()
            raise RuntimeError(f"{name} exited with {process.returncode} before listening:\n{text}")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} did not listen on {sorted(pending)} within {READY_TIMEOUT} s")
        for port in list(pending):
            with socket.socket() as probe:
                probe.settimeout(1.0)
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    pending.discard(port)
        if pending:
            time.sleep(0.02)
    return server


def start_tinyproxy(auth: tuple[str, str] | None = None) -> ProxyServer:
    """tinyproxy: HTTP CONNECT to any port; with ``auth``, Basic (a wrong password gets 401, not 407)."""
    binary = _binary("tinyproxy", "/usr/bin/tinyproxy", "/usr/sbin/tinyproxy")
    workdir = _workdir("tinyproxy")
    port = free_port()
    lines = [f"Port {port}", "Listen 127.0.0.1", "MaxClients 100", "Timeout 60", "LogLevel Info"]
    if os.geteuid() == 0:
        lines += ["User nobody", "Group nogroup"]
    if auth:
        lines.append(f"BasicAuth {auth[0]} {auth[1]}")
    (workdir / "tinyproxy.conf").write_text("\n".join(lines) + "\n")
    return _spawn("tinyproxy", [binary, "-d", "-c", str(workdir / "tinyproxy.conf")], {"plain": port}, workdir)


def start_squid(user: str, password: str, cert: Path, key: Path) -> ProxyServer:
    """squid with three ports: "plain" (no auth), "auth" (Basic ``user``/``password``), "tls" (an HTTPS proxy
    with ``cert``/``key``, no auth). It resolves :data:`TEST_HOSTNAME` to 127.0.0.1 through its own hosts
    file."""
    binary = _binary("squid", "/usr/sbin/squid")
    helper = Path("/usr/lib/squid/basic_ncsa_auth")
    if not helper.exists():
        raise ProxyUnavailable(f"{helper} is missing (squid's Basic auth helper)")
    openssl = _binary("openssl")
    workdir = _workdir("squid")
    hashed = subprocess.run(
        [openssl, "passwd", "-1", password], check=True, capture_output=True, text=True
    ).stdout.strip()
    (workdir / "passwd").write_text(f"{user}:{hashed}\n")
    (workdir / "hosts").write_text(f"127.0.0.1 {TEST_HOSTNAME}\n")
    shutil.copy(cert, workdir / "cert.pem")
    shutil.copy(key, workdir / "key.pem")
    ports = {"plain": free_port(), "auth": free_port(), "tls": free_port()}
    d = workdir
    config = f"""
http_port 127.0.0.1:{ports["plain"]} name=plain
http_port 127.0.0.1:{ports["auth"]} name=authport
https_port 127.0.0.1:{ports["tls"]} tls-cert={d}/cert.pem tls-key={d}/key.pem name=tlsport
acl plain myportname plain
acl tlsport myportname tlsport
auth_param basic program /usr/lib/squid/basic_ncsa_auth {d}/passwd
acl authed proxy_auth REQUIRED
http_access allow localhost plain
http_access allow localhost tlsport
http_access allow localhost authed
http_access deny all
pid_filename {d}/squid.pid
cache_log stdio:{d}/cache.log
access_log stdio:{d}/access.log
cache deny all
cache_mem 8 MB
coredump_dir {d}
shutdown_lifetime 0 seconds
pinger_enable off
dns_nameservers 127.0.0.1
hosts_file {d}/hosts
udp_incoming_address 127.0.0.1
"""
    (workdir / "squid.conf").write_text(config)
    if os.geteuid() == 0:
        shutil.chown(workdir, "proxy", "proxy")
        for path in workdir.iterdir():
            shutil.chown(path, "proxy", "proxy")
    server = _spawn("squid", [binary, "-N", "-f", str(workdir / "squid.conf")], ports, workdir)
    server.stop_signal = signal.SIGKILL
    return server


def start_dante() -> ProxyServer:
    """dante: SOCKS4 and SOCKS5 without authentication (it refuses SOCKS4a)."""
    binary = _binary("danted", "/usr/sbin/danted")
    workdir = _workdir("dante")
    port = free_port()
    config = f"""
logoutput: stderr
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
socks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 command: connect }}
"""
    (workdir / "danted.conf").write_text(config)
    argv = [binary, "-f", str(workdir / "danted.conf"), "-p", str(workdir / "danted.pid")]
    return _spawn("dante", argv, {"plain": port}, workdir)


def start_microsocks(auth: tuple[str, str] | None = None) -> ProxyServer:
    """microsocks: SOCKS5, with username/password when ``auth`` is given."""
    binary = _binary("microsocks", "/usr/bin/microsocks")
    port = free_port()
    argv = [binary, "-i", "127.0.0.1", "-p", str(port)]
    if auth:
        argv += ["-u", auth[0], "-P", auth[1]]
    return _spawn("microsocks", argv, {"plain": port}, _workdir("microsocks"))


def start_tiny_proxy(
    kind: str,
    auth: tuple[str, str] | None = None,
    tls: tuple[Path, Path] | None = None,
    hosts: dict[str, str] | None = None,
) -> ProxyServer:
    """tiny-proxy (``kind`` "http", "socks4" (4 and 4a) or "socks5") in a child Python; ``tls`` = (cert, key)
    makes it an HTTPS proxy; ``hosts`` maps names it should resolve (name -> IP)."""
    try:
        import tiny_proxy  # noqa: F401
    except ImportError as exc:
        raise ProxyUnavailable("the tiny-proxy package is not installed (run .ci/install-proxies.sh)") from exc
    port = free_port()
    argv = [sys.executable, str(Path(__file__).resolve()), "tiny-proxy", kind, str(port)]
    if auth:
        argv += ["--auth", f"{auth[0]}:{auth[1]}"]
    if tls:
        argv += ["--tls", str(tls[0]), str(tls[1])]
    for name, ip in (hosts or {}).items():
        argv += ["--map", f"{name}={ip}"]
    return _spawn(f"tiny-proxy-{kind}", argv, {"plain": port}, _workdir("tiny-proxy"))


def _run_tiny_proxy(argv: Sequence[str]) -> None:
    """The launcher: serve one tiny-proxy handler on 127.0.0.1 until killed."""
    import ssl

    import anyio
    import tiny_proxy
    from anyio.streams.tls import TLSListener

    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["http", "socks4", "socks5"])
    parser.add_argument("port", type=int)
    parser.add_argument("--auth")
    parser.add_argument("--tls", nargs=2)
    parser.add_argument("--map", action="append", default=[])
    args = parser.parse_args(argv)
    user, _, password = (args.auth or "").partition(":")
    if args.kind == "http":
        handler = tiny_proxy.HttpProxyHandler(user or None, password or None)
    elif args.kind == "socks4":
        handler = tiny_proxy.Socks4ProxyHandler(user or None)
    else:
        handler = tiny_proxy.Socks5ProxyHandler(user or None, password or None)

    names = dict(entry.split("=", 1) for entry in args.map)
    if names:
        # tiny-proxy dials with anyio.connect_tcp, looked up at call time: a private hosts file for this
        # process.
        real_connect = anyio.connect_tcp

        async def connect_tcp(remote_host: str, remote_port: int, **kwargs: object) -> object:
            host = names.get(remote_host, remote_host)
            return await real_connect(host, remote_port, **kwargs)  # type: ignore[call-overload]

        anyio.connect_tcp = connect_tcp  # type: ignore[assignment]

    async def serve() -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=args.port, backlog=256)
        if args.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*args.tls)
            listener = TLSListener(listener, context, standard_compatible=False)  # type: ignore[assignment]
        await listener.serve(handler.handle)

    anyio.run(serve)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "tiny-proxy":
        _run_tiny_proxy(sys.argv[2:])
    else:
        sys.exit(__doc__)
