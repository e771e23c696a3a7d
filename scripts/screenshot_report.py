#!/usr/bin/env python3
"""Screenshot of a pytest-html report with a failing scenario: docs/img/report.png.

Why: the docs show what a failure looks like in the HTML report (SVG ladder + trace), and
re-running this script after a change to the reports refreshes that picture.

What it does: copies the bundled top-level scenarios plus one failing scenario (the busy
call without its failure branch) into a temporary directory, runs pytest there with
``--html`` (pytest-html must be installed), opens the report in headless Chromium and
saves a screenshot.

    python scripts/screenshot_report.py [--out docs/img/report.png] [--width 1280]
                                        [--height 1650] [--keep DIR]

Needs Debian's ``chromium`` (``apt-get install -y chromium``) or ``CHROMIUM=/path``. Takes
about 10 s; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def failing_scenario() -> dict:
    """Alice calls Bob, Bob answers 486 and the MakeCall has no failure branch."""
    def node(node_id: str, kind: str, **data: object) -> dict:
        return {"id": node_id, "type": kind, "position": {"x": 0, "y": 0}, "data": data}

    return {"name": "Bob is busy, no failure branch",
            "nodes": [node("alice", "sipInstance", label="alice", dn="100"),
                      node("bob", "sipInstance", label="bob", dn="200"),
                      node("dial", "command", command="MakeCall", sipInstanceId="alice",
                           callId="call", targetUri="200"),
                      node("ring", "event", event="INCOMING", sipInstanceId="bob", callId="call"),
                      node("busy", "command", command="Response", sipInstanceId="bob",
                           callId="call", statusCode=486)],
            "edges": [{"id": "e1", "source": "alice", "target": "dial"},
                      {"id": "e2", "source": "bob", "target": "ring"},
                      {"id": "e3", "source": "ring", "target": "busy"}]}


def chromium() -> str:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    sys.exit("no chromium found: apt-get install -y chromium (or set CHROMIUM=/path)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "img" / "report.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1650)
    parser.add_argument("--keep", help="run in this directory and keep it")
    args = parser.parse_args()
    browser = chromium()
    work = Path(args.keep or tempfile.mkdtemp(prefix="sipflow-shot-"))
    work.mkdir(parents=True, exist_ok=True)
    for path in sorted((REPO / "scenarios").glob("*.sipflow.json")):
        shutil.copy(path, work / path.name)
    (work / "zz-busy-no-branch.sipflow.json").write_text(json.dumps(failing_scenario(), indent=1))
    (work / "pytest.ini").write_text("[pytest]\nsipflow_port_base = 9300\n"
                                     "sipflow_rtp_port_base = 47000\nsipflow_port_range = 60\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                          "--html=report.html", "--self-contained-html", "-q"],
                         cwd=work, capture_output=True, text=True)
    if not (work / "report.html").exists():
        sys.exit(f"pytest wrote no report (pytest-html installed?):\n{run.stdout}\n{run.stderr}")
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    # ?collapsed=Passed: passed rows folded, the failing one open with its extras
    url = (work / "report.html").resolve().as_uri() + "?collapsed=Passed"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--window-size={args.width},{args.height}",
                    "--virtual-time-budget=5000", f"--screenshot={out}", url],
                   check=True, capture_output=True, timeout=120)
    print(f"{out} ({out.stat().st_size // 1024} KB) from {work / 'report.html'}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
