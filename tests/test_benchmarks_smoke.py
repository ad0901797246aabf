"""The benchmark suite's code works: ``python -m benchmarks --quick`` end to end.

Benchmarks are not tests: nothing here looks at a time or a ratio, only that
every scenario ran both SDKs, the server counted their requests, and the report
was written. The engine benchmark belongs to its own module and is skipped
here (it has its own quick mode); only our handling of it is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("twelvelabs")
pytest.importorskip("psutil")


def test_quick_suite_writes_a_report(tmp_path: Path) -> None:
    out, raw = tmp_path / "RESULTS.md", tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--skip",
            "engine,v2",
            "--n",
            "3",
            "--result-seconds",
            "8",
            "--out",
            str(out),
            "--json",
            str(raw),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = out.read_text()
    for heading in (
        "## Machine",
        "## Goals",
        "## 1. Many tasks",
        "## 2. Big upload",
        "## 3. Big result",
        "## 5. Loopback ceiling",
    ):
        assert heading in text
    assert "twelvelabs 1.3" in text

    res = json.loads(raw.read_text())["results"]
    many = res["many"]["clients"]
    assert {k.split()[0] for k in many} == {"official", "aioembed"}
    for runs in many.values():
        for r in runs:
            assert r["ok"] == 3
            # Counted by the server: 3 creates and 3 retrieves, whatever the polling.
            assert r["requests"]["POST /embed/tasks"] == 3
            assert r["requests"]["GET /embed/tasks/{task_id}"] >= 3
    official = next(v for k, v in many.items() if k.startswith("official"))
    assert official[0]["requests"]["GET /embed/tasks/{task_id}/status"] >= 3

    upload = next(iter(res["upload"]["sizes"].values()))
    clients = {"official-file", "official-bytes", "aioembed-path", "raw-aiohttp"}
    assert set(upload) == clients | {c + "@sink" for c in clients}
    for runs in upload.values():
        assert runs and all(r["status"] in (200, 400) and r["throughput"] > 0 for r in runs)

    # The report can be written again from the raw numbers without measuring anything.
    again = tmp_path / "AGAIN.md"
    subprocess.run(
        [sys.executable, "-m", "benchmarks", "--render", str(raw), "--out", str(again)],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert again.read_text().split("\n## Machine")[1] == text.split("\n## Machine")[1]

    result = res["result"]
    assert set(result["results"]) == {"synthetic", "engine"}
    for name, per in result["results"].items():
        for runs in per.values():
            assert all(r["segments"] == result["tasks"][name]["segments"] for r in runs)
            assert all(r["dims"] == 1024 for r in runs)


def test_v2_scenario_writes_its_section_and_keeps_the_others(tmp_path: Path) -> None:
    """Scenario 6 alone (the smoke above leaves it out to stay bounded), written into a
    copy of the committed report: every section it did not measure is kept."""
    out, raw = tmp_path / "RESULTS.md", tmp_path / "results.json"
    committed = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    out.write_text(committed)
    args = ["--quick", "--only", "v2", "--n", "2", "--out", str(out), "--json", str(raw)]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = out.read_text()
    assert text.count("## 6. Many Embed API v2 tasks") == 1
    headings = [line for line in committed.splitlines() if line.startswith("## ")]
    assert all(h in text for h in headings), [h for h in headings if h not in text]
    assert "| 6. many v2 tasks" in text and "| 1. many tasks" in text
    clients = json.loads(raw.read_text())["results"]["v2"]["clients"]
    assert {k.split()[0] for k in clients} == {"official", "aioembed"} and len(clients) == 3
    for runs in clients.values():
        for r in runs:
            # Counted by the server: 2 creates and at least 2 retrieves, whatever the polling.
            assert r["ok"] == 2 and r["items"] > 0
            assert r["requests"]["POST /embed-v2/tasks"] == 2
            assert r["requests"]["GET /embed-v2/tasks/{task_id}"] >= 2


def test_engine_section_reports_a_missing_module() -> None:
    from benchmarks.__main__ import run_engine_module

    got = run_engine_module("engine_not_there", quick=True)
    assert got["ok"] is False
    assert "not present" in got["markdown"]
