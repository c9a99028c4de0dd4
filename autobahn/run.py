"""Run the Autobahn|Testsuite against wsstream as a server, as a client, or both, and judge the result.

Owns the whole Autobahn pipeline (stdlib only, Python 3):

* the tool environment: Autobahn's ``wstest`` runs only on Python 2.7, so a 2.7 virtualenv with pinned
  requirements (``autobahn/requirements-py27.txt``) is created once under ``<repo>/.tools/autobahn/``
  (``$WSSTREAM_TOOLS_DIR`` overrides) and reused; ``--setup-only`` just does that (CI's
  ``.ci/install-autobahn.sh`` calls it);
* the server role: ``autobahn/echo_server.py`` on a free port, probed by ``wstest -m fuzzingclient``;
* the client role: ``wstest -m fuzzingserver -u 0`` on a free port, driven by ``autobahn/client.py``;
* the verdict: ``index.json`` is summarised (counts per behaviour, every failing case with the details of its
  per-case report), one JSON summary line is printed last, and the exit status is 0 only when every case
  passed (1 when a case failed, 2 when the harness itself could not finish).

A case passes when both ``behavior`` and ``behaviorClose`` are OK, NON-STRICT or INFORMATIONAL
(timing-sensitive cases flip between OK and NON-STRICT from run to run). Every wait is bounded; wstest is
killed after ``--timeout`` seconds per role.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PASSING = frozenset({"OK", "NON-STRICT", "INFORMATIONAL"})
COMPRESSION_CASES = ("12.*", "13.*")
# The recipe in shared/notes/autobahn.md: the last virtualenv series that still creates 2.7 environments.
VIRTUALENV_PIN = "virtualenv<20.22"
TESTSUITE_PIN = "autobahntestsuite==25.10.1"
SETUP_STEP_TIMEOUT = 900.0


class HarnessError(Exception):
    """The harness could not produce a verdict (setup failed, a process hung or died, no report)."""


# --- environment


def tools_dir() -> Path:
    """Where the Python 2.7 tool environment lives."""
    return Path(os.environ.get("WSSTREAM_TOOLS_DIR") or REPO / ".tools" / "autobahn")


def find_python27(explicit: str | None) -> str:
    """Locate a Python 2.7 interpreter: --python2, $PYTHON27, pyenv's 2.7.18, or python2.7 on PATH."""
    candidates: list[str] = []
    if explicit:
        candidates.append(explicit)
    if os.environ.get("PYTHON27"):
        candidates.append(os.environ["PYTHON27"])
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv"), "/root/.pyenv"]
    pyenv = shutil.which("pyenv")
    if pyenv:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            roots.insert(0, subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30).stdout.strip())
    candidates += [f"{root}/versions/2.7.18/bin/python2.7" for root in roots if root]
    found = shutil.which("python2.7")
    if found:
        candidates.append(found)
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise HarnessError(
        "no Python 2.7 found (wstest needs it): tried " + ", ".join(candidates) + "; pass --python2 or set PYTHON27"
    )


def _run_step(cmd: list[str], log: TextIO) -> None:
    """Run one setup command with its output in the log; raise HarnessError when it fails or hangs."""
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    try:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=SETUP_STEP_TIMEOUT, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        raise HarnessError(f"setup step failed: {' '.join(cmd)}: {exc} (see {log.name})") from exc


def ensure_wstest(python2: str | None = None, *, quiet: bool = False) -> Path:
    """Return the path of a working ``wstest``, creating the 2.7 environment first when it is missing.

    Idempotent and safe against concurrent callers (a file lock); a half-built environment (no completion
    marker) is removed and built again.
    """
    root = tools_dir()
    root.mkdir(parents=True, exist_ok=True)
    env27 = root / "venv-ab27"
    wstest = env27 / "bin" / "wstest"
    marker = env27 / ".wsstream-complete"
    requirements = HERE / "requirements-py27.txt"
    wanted = requirements.read_text() + TESTSUITE_PIN
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text() == wanted and os.access(wstest, os.X_OK):
            return wstest
        started = time.monotonic()
        if not quiet:
            print(f"autobahn: creating the Python 2.7 wstest environment in {root} (about a minute)", flush=True)
        interpreter = find_python27(python2)
        for stale in (env27, root / "venv-tools"):
            shutil.rmtree(stale, ignore_errors=True)
        tools = root / "venv-tools"
        with open(root / "setup.log", "w") as log:
            _run_step([sys.executable, "-m", "venv", str(tools)], log)
            _run_step([str(tools / "bin" / "pip"), "install", "-q", VIRTUALENV_PIN], log)
            _run_step(
                [
                    str(tools / "bin" / "virtualenv"),
                    "-q",
                    "--app-data",
                    str(root / "vapp"),
                    "-p",
                    interpreter,
                    str(env27),
                ],
                log,
            )
            _run_step([str(env27 / "bin" / "pip"), "install", "-q", "-r", str(requirements)], log)
            _run_step([str(env27 / "bin" / "pip"), "install", "-q", TESTSUITE_PIN], log)
            _run_step([str(wstest), "-a"], log)
        marker.write_text(wanted)
        if not quiet:
            print(f"autobahn: wstest ready in {time.monotonic() - started:.0f} s", flush=True)
        return wstest


# --- processes


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (for wstest, which cannot report the one it bound)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(
    cmd: list[str], log: Path, *, stdout_pipe: bool = False, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start cmd in its own process group (so it can be killed with its children), stderr into log."""
    logfile = open(log, "w")  # noqa: SIM115 - handed to the child; the parent's copy is closed by GC
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE if stdout_pipe else logfile,
        stderr=logfile,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        env=env,
    )


def stop(proc: subprocess.Popen[str], grace: float = 10.0) -> None:
    """End a process started by spawn(): SIGTERM to its group, then SIGKILL after grace seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(grace)
    if proc.stdout:
        proc.stdout.close()


def wait_ready_line(proc: subprocess.Popen[str], timeout: float) -> int:
    """Wait for ``READY <port>`` on the child's stdout; return the port."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            line = proc.stdout.readline()
            if not line:
                raise HarnessError(f"the echo server exited (status {proc.wait(5)}) before it was ready")
            if line.startswith("READY "):
                return int(line.split()[1])
    raise HarnessError(f"the echo server printed no READY line within {timeout:.0f} s")


def wait_listening(port: int, proc: subprocess.Popen[str], timeout: float) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port (and proc is still alive)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"wstest exited (status {proc.returncode}) before listening on port {port}")
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise HarnessError(f"wstest did not listen on port {port} within {timeout:.0f} s")


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file (empty when there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def child_env() -> dict[str, str]:
    """Environment for the side under test: the source tree importable, no proxies for loopback."""
    env = dict(os.environ)
    # The source tree, after any PYTHONPATH the caller set (so a patched copy can be tested).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(REPO)) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- roles


def case_lists(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The wstest ``cases`` and ``exclude-cases`` lists for this run."""
    cases = [c.strip() for c in args.cases.split(",") if c.strip()] if args.cases else ["*"]
    exclude = [c.strip() for c in args.exclude.split(",") if c.strip()]
    if not args.compression:
        exclude += COMPRESSION_CASES
    return cases, exclude


def run_server_role(args: argparse.Namespace, wstest: Path, outdir: Path) -> None:
    """Serve the echo server under test and let wstest's fuzzingclient probe it."""
    cases, exclude = case_lists(args)
    cmd = [args.python, str(HERE / "echo_server.py"), "0", "--impl", args.impl]
    if args.compression:
        cmd.append("--compression")
    server = spawn(cmd, outdir / "echo_server.log", stdout_pipe=True, env=child_env())
    try:
        port = wait_ready_line(server, 60)
        spec = {
            "outdir": str(outdir),
            "servers": [{"agent": args.agent, "url": f"ws://127.0.0.1:{port}"}],
            "cases": cases,
            "exclude-cases": exclude,
            "exclude-agent-cases": {},
        }
        (outdir / "fuzzingclient.json").write_text(json.dumps(spec, indent=2))
        fuzzer = spawn(
            [str(wstest), "-m", "fuzzingclient", "-s", str(outdir / "fuzzingclient.json")],
            outdir / "wstest.log",
        )
        try:
            status = fuzzer.wait(args.timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"wstest fuzzingclient still running after {args.timeout:.0f} s; killed") from None
        finally:
            stop(fuzzer)
        if status != 0:
            raise HarnessError(f"wstest fuzzingclient exited with {status}:\n{tail(outdir / 'wstest.log')}")
        if server.poll() is not None:
            raise HarnessError(f"the echo server died during the run (status {server.returncode})")
    finally:
        stop(server)


def run_client_role(args: argparse.Namespace, wstest: Path, outdir: Path) -> None:
    """Start wstest's fuzzingserver and drive it with the client under test."""
    cases, exclude = case_lists(args)
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    spec = {
        "url": url,
        "outdir": str(outdir),
        "cases": cases,
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    }
    (outdir / "fuzzingserver.json").write_text(json.dumps(spec, indent=2))
    fuzzer = spawn(
        [str(wstest), "-m", "fuzzingserver", "-s", str(outdir / "fuzzingserver.json"), "-u", "0"],
        outdir / "wstest.log",
    )
    try:
        wait_listening(port, fuzzer, 60)
        cmd = [args.python, str(HERE / "client.py"), url, "--agent", args.agent, "--impl", args.impl]
        if args.compression:
            cmd.append("--compression")
        driver = spawn(cmd, outdir / "client.log", env=child_env())
        try:
            status = driver.wait(args.timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"the client driver still running after {args.timeout:.0f} s; killed") from None
        finally:
            stop(driver)
        if status != 0:
            raise HarnessError(f"the client driver exited with {status}:\n{tail(outdir / 'client.log')}")
        # /updateReports has closed, so the index is written; allow a moment for the file system anyway.
        deadline = time.monotonic() + 30
        while not (outdir / "index.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop(fuzzer)


# --- verdict


def _short(value: Any, limit: int = 300) -> Any:
    """A JSON-able value cut to a readable length."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def case_details(outdir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """What Autobahn says about one case: expected vs observed, close codes, who closed."""
    details: dict[str, Any] = {"behavior": entry.get("behavior"), "behaviorClose": entry.get("behaviorClose")}
    report = outdir / str(entry.get("reportfile", ""))
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        details["report"] = f"unreadable: {report.name}"
        return details
    for key in (
        "description",
        "expectation",
        "result",
        "resultClose",
        "expectedClose",
        "localCloseCode",
        "localCloseReason",
        "remoteCloseCode",
        "remoteCloseReason",
        "wasClean",
        "wasNotCleanReason",
        "droppedByMe",
        "failedByMe",
        "expected",
        "received",
    ):
        if key in data:
            details[key] = _short(data[key]) if key in ("expected", "received", "expectedClose") else data[key]
    return details


def summarise(role: str, args: argparse.Namespace, outdir: Path, seconds: float, error: str | None) -> dict[str, Any]:
    """Read index.json for this role and print the human summary; return the machine summary."""
    summary: dict[str, Any] = {
        "role": role,
        "agent": args.agent,
        "impl": args.impl,
        "seconds": round(seconds, 1),
    }
    index_path = outdir / "index.json"
    results: dict[str, Any] = {}
    if index_path.exists():
        try:
            results = json.loads(index_path.read_text()).get(args.agent, {})
        except ValueError as exc:
            error = error or f"index.json unreadable: {exc}"
    elif not error:
        error = "no index.json was written"
    if not results and not error:
        error = f"no results for agent {args.agent!r} (no case matched?)"
    ordered = sorted(results, key=lambda case: tuple(int(part) for part in case.split(".")))
    failing = [
        c
        for c in ordered
        if results[c].get("behavior") not in PASSING or results[c].get("behaviorClose") not in PASSING
    ]
    summary.update(
        total=len(ordered),
        passed=len(ordered) - len(failing),
        failed=len(failing),
        behavior=dict(Counter(results[c].get("behavior") for c in ordered)),
        behaviorClose=dict(Counter(results[c].get("behaviorClose") for c in ordered)),
        failing=failing,
        error=error,
    )
    print(
        f"\n== {role} ({args.agent}, impl {args.impl}): {summary['passed']}/{summary['total']} passed "
        f"in {seconds:.0f} s; reports in {outdir}"
    )
    print(f"   behavior: {summary['behavior']}  behaviorClose: {summary['behaviorClose']}")
    details = {case: case_details(outdir, results[case]) for case in failing}
    for case, info in details.items():
        print(f"-- FAIL {case}: behavior={info['behavior']} behaviorClose={info['behaviorClose']}")
        for key, value in info.items():
            if key not in ("behavior", "behaviorClose"):
                print(f"     {key}: {value}")
    if error:
        print(f"!! harness error: {error}")
    log = outdir / ("echo_server.log" if role == "server" else "client.log")
    text = tail(log, 60)
    if "Traceback" in text:
        print(f"!! {log.name} has tracebacks (last lines):\n{text}")
    (outdir / "summary.json").write_text(json.dumps({**summary, "details": details}, indent=2))
    return summary


# --- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see README.md)."""
    parser = argparse.ArgumentParser(description="Run the Autobahn|Testsuite against wsstream.")
    parser.add_argument("--role", choices=("server", "client", "both"), default="both")
    parser.add_argument(
        "--cases",
        default="",
        help='comma-separated wstest patterns, e.g. "1.*,2.*,12.1.*" '
        "(default: all; 12.* and 13.* are dropped unless --compression)",
    )
    parser.add_argument("--exclude", default="", help="comma-separated wstest patterns to leave out")
    parser.add_argument("--compression", action="store_true", help="turn on permessage-deflate; allow 12.*/13.*")
    parser.add_argument("--agent", default="wsstream", help="agent name in the reports")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the side under test")
    parser.add_argument(
        "--impl",
        choices=("wsstream", "websockets"),
        default="wsstream",
        help="library under test (websockets = known-good stand-in to prove the harness)",
    )
    parser.add_argument("--python2", default=None, help="Python 2.7 interpreter for wstest's environment")
    parser.add_argument("--reports", type=Path, default=REPO / "reports" / "autobahn", help="report directory")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per role before wstest is killed (default 600, 3600 with --compression)",
    )
    parser.add_argument("--setup-only", action="store_true", help="create the wstest environment and exit")
    args = parser.parse_args(argv)
    if args.timeout is None:
        args.timeout = 3600.0 if args.compression else 600.0
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the requested roles; 0 = every case passed, 1 = a case failed, 2 = the harness failed."""
    args = parse_args(argv)
    try:
        wstest = ensure_wstest(args.python2)
    except HarnessError as exc:
        print(f"autobahn: {exc}", file=sys.stderr)
        print(json.dumps({"autobahn": {}, "ok": False, "error": str(exc)}))
        return 2
    if args.setup_only:
        print(f"autobahn: wstest at {wstest}")
        return 0

    roles = ("server", "client") if args.role == "both" else (args.role,)
    runners = {"server": run_server_role, "client": run_client_role}
    summaries: dict[str, Any] = {}
    for role in roles:
        outdir = (args.reports / ("servers" if role == "server" else "clients")).resolve()
        shutil.rmtree(outdir, ignore_errors=True)
        outdir.mkdir(parents=True)
        started = time.monotonic()
        error: str | None = None
        print(f"autobahn: {role} role, impl {args.impl}, cases {case_lists(args)}", flush=True)
        try:
            runners[role](args, wstest, outdir)
        except HarnessError as exc:
            error = str(exc)
        summaries[role] = summarise(role, args, outdir, time.monotonic() - started, error)

    harness_failed = any(s["error"] for s in summaries.values())
    cases_failed = any(s["failed"] for s in summaries.values())
    ok = not harness_failed and not cases_failed
    # One line: a long traceback in an error is cut to its last, most telling, part.
    line = {
        "autobahn": {r: {**s, "error": s["error"] and _short(s["error"][-400:])} for r, s in summaries.items()},
        "ok": ok,
    }
    print(json.dumps(line, separators=(",", ":")))
    return 2 if harness_failed else (1 if cases_failed else 0)


if __name__ == "__main__":
    sys.exit(main())
