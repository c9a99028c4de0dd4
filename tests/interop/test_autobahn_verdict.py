"""The Autobahn harness's verdict (autobahn/run.py): which cases count as failing, and what is reported.

Runs on report files written here in wstest's format, so it needs neither Python 2.7 nor wstest.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUN_PY = Path(__file__).resolve().parents[2] / "autobahn" / "run.py"


@pytest.fixture(scope="module")
def run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("autobahn_run", RUN_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["autobahn_run"] = module
    spec.loader.exec_module(module)
    return module


def write_reports(outdir: Path, cases: dict[str, tuple[str, str]]) -> None:
    """index.json and one per-case report for each case id -> (behavior, behaviorClose)."""
    index = {}
    for case, (behavior, behavior_close) in cases.items():
        name = f"wsstream_case_{case.replace('.', '_')}.json"
        index[case] = {"behavior": behavior, "behaviorClose": behavior_close, "duration": 1, "reportfile": name}
        (outdir / name).write_text(
            json.dumps(
                {
                    "description": f"case {case}",
                    "expectation": "Clean close with normal code.",
                    "result": "Actual events match at least one expected.",
                    "resultClose": "Connection was properly closed",
                    "expectedClose": {"closeCode": [1000], "closedByMe": True, "requireClean": True},
                    "localCloseCode": 1000,
                    "remoteCloseCode": 1002,
                    "remoteCloseReason": "some reason",
                    "expected": {"OK": [["message", "x" * 1000, False]]},
                    "received": [],
                }
            )
        )
    (outdir / "index.json").write_text(json.dumps({"wsstream": index}))


def options(run: ModuleType, *argv: str) -> argparse.Namespace:
    args: argparse.Namespace = run.parse_args(list(argv))
    return args


def test_failing_cases_are_those_outside_ok_non_strict_informational(
    run: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_reports(
        tmp_path,
        {
            "1.1.1": ("OK", "OK"),
            "3.2": ("NON-STRICT", "OK"),
            "10.1.1": ("INFORMATIONAL", "INFORMATIONAL"),
            "7.1.5": ("FAILED", "WRONG CODE"),
            "2.10": ("OK", "FAILED"),
            "12.1.1": ("UNIMPLEMENTED", "UNIMPLEMENTED"),
        },
    )
    summary = run.summarise("server", options(run), tmp_path, 1.0, None)
    # Numeric order, not string order: 2.10 before 7.1.5 before 12.1.1.
    assert summary["failing"] == ["2.10", "7.1.5", "12.1.1"]
    assert (summary["total"], summary["passed"], summary["failed"]) == (6, 3, 3)
    assert summary["behavior"]["OK"] == 2
    out = capsys.readouterr().out
    assert "FAIL 7.1.5: behavior=FAILED behaviorClose=WRONG CODE" in out
    assert "remoteCloseCode: 1002" in out
    assert "(1" in out  # the long "expected" value is cut, with its full length given
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["details"]["7.1.5"]["remoteCloseReason"] == "some reason"


def test_all_passing_has_no_failures(run: ModuleType, tmp_path: Path) -> None:
    write_reports(tmp_path, {"1.1.1": ("OK", "OK"), "6.4.3": ("NON-STRICT", "OK")})
    summary = run.summarise("client", options(run), tmp_path, 1.0, None)
    assert (summary["failed"], summary["error"]) == (0, None)


def test_missing_or_empty_index_is_a_harness_error(run: ModuleType, tmp_path: Path) -> None:
    assert run.summarise("server", options(run), tmp_path, 1.0, None)["error"] == "no index.json was written"
    (tmp_path / "index.json").write_text(json.dumps({"other-agent": {}}))
    assert "no results" in run.summarise("server", options(run), tmp_path, 1.0, None)["error"]


def test_case_lists_leave_out_compression_cases_unless_asked(run: ModuleType) -> None:
    assert run.case_lists(options(run)) == (["*"], ["12.*", "13.*"])
    assert run.case_lists(options(run, "--compression", "--cases", "1.*, 12.1.*")) == (["1.*", "12.1.*"], [])
    assert run.case_lists(options(run, "--exclude", "9.*")) == (["*"], ["9.*", "12.*", "13.*"])
