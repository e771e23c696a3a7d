#!/usr/bin/env python3
"""Screenshot of the scenario coverage page: docs/img/coverage.png.

Why: the docs show what ``--sipflow-coverage`` draws, and the picture is checked in a real
browser (headless Chromium) rather than only as SVG text.

What it does: copies the bundled busy call (its failure branch taken) and the attended
transfer, adds a call whose MakeCall has a failure branch a good run never takes and one
that fails without a failure branch, runs pytest there with ``--sipflow-coverage=cov`` and
screenshots ``cov/coverage.html``.

    python scripts/screenshot_coverage.py [--out docs/img/coverage.png] [--keep DIR]

Needs Debian's ``chromium`` or ``CHROMIUM=/path``; takes about 15 s; not part of the suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from screenshot_report import REPO, chromium, failing_scenario


def guarded_call() -> dict:
    """A calls B, B answers, A hangs up; MakeCall's failure branch is never taken."""
    def node(node_id: str, kind: str, x: int, y: int, **data: object) -> dict:
        return {"id": node_id, "type": kind, "position": {"x": x, "y": y}, "data": data}

    return {"name": "guarded call",
            "nodes": [node("alice", "sipInstance", 0, 0, label="alice", dn="100"),
                      node("bob", "sipInstance", 420, 0, label="bob", dn="200"),
                      node("dial", "command", 0, 110, command="MakeCall", sipInstanceId="alice",
                           callId="c", targetUri="200"),
                      node("hang-up", "command", 0, 220, command="Release",
                           sipInstanceId="alice", callId="c"),
                      node("give-up", "event", 210, 220, event="TIMEOUT",
                           sipInstanceId="alice", timeout=10),
                      node("ring", "event", 420, 110, event="INCOMING", sipInstanceId="bob",
                           callId="c"),
                      node("answer", "command", 420, 220, command="Answer",
                           sipInstanceId="bob", callId="c"),
                      node("gone", "event", 420, 330, event="DISCONNECTED",
                           sipInstanceId="bob", callId="c")],
            "edges": [{"id": "e1", "source": "alice", "target": "dial"},
                      {"id": "e2", "source": "dial", "target": "hang-up"},
                      {"id": "e3", "source": "dial", "target": "give-up",
                       "sourceHandle": "failure"},
                      {"id": "e4", "source": "bob", "target": "ring"},
                      {"id": "e5", "source": "ring", "target": "answer"},
                      {"id": "e6", "source": "answer", "target": "gone"}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "img" / "coverage.png"))
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=1500)
    parser.add_argument("--keep", help="run in this directory and keep it")
    args = parser.parse_args()
    browser = chromium()
    work = Path(args.keep or tempfile.mkdtemp(prefix="sipflow-cov-"))
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "scenarios" / "busy-failure-branch.sipflow.json", work)
    (work / "guarded.sipflow.json").write_text(json.dumps(guarded_call(), indent=1))
    (work / "zz-busy-no-branch.sipflow.json").write_text(json.dumps(failing_scenario(), indent=1))
    (work / "pytest.ini").write_text("[pytest]\nsipflow_port_base = 9300\n"
                                     "sipflow_rtp_port_base = 47000\nsipflow_port_range = 60\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                          "--sipflow-coverage=cov"], cwd=work, capture_output=True, text=True)
    page = work / "cov" / "coverage.html"
    if not page.exists():
        sys.exit(f"pytest wrote no coverage page:\n{run.stdout}\n{run.stderr}")
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--window-size={args.width},{args.height}",
                    "--virtual-time-budget=3000", f"--screenshot={out}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    print(f"{out} ({out.stat().st_size // 1024} KB) from {page}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
