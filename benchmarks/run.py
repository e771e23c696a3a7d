"""Benchmarks of pytest-sipflow, printed as one table (see docs/benchmarks.md).

    .venv/bin/python benchmarks/run.py [--n 40] [--m 200] [--write docs/benchmarks.md]
                                       [--only real|cpu]

Measured side by side in one run, all on 127.0.0.1:
1. a basic-call suite of N scenario files under pytest, one worker (-n 0): per scenario;
2. the same call flow as one SIPp process per scenario (`sipp -sn uac` against one
   `sipp -sn uas`), needs Debian's sip-tester;
3. the suite of M with -n 2 against -n 0, and the CPU of every process of each run
   (pytest, workers, fork server, agents: the reaped children's rusage), so the CPU of one
   scenario is the marginal (CPU(M) - CPU(N)) / (M - N), beside SIPp's uac + uas CPU;
4. the 50-instance scenario (25 simultaneous calls), warm pool and cold;
5. an idle agent's CPU use, and the plugin's import cost on top of pytest;
6. the basic-call suite again with every per-item report on (trace, pcap, JSON), beside 1.
   (which asks for none: a passing item then renders nothing);
7. real mode (issue 9), through a real Kamailio (pytest_sipflow.testing.KamailioServer):
   the basic call per scenario with registration (REGISTER with digest auth, the call
   proxy-authenticated, un-REGISTER at clean-up) next to the same call local, and 50
   instances registering at once (time until all are registered);
8. max steady calls per second: a load run (--sipflow-rate) against `sipp -r` (cps.py).
Targets (issue 5): <= 20 ms per scenario, >= 5x faster than SIPp, 50 instances <= 5 s;
(issue 8): idle agent <= 0.2 % of a core, plugin import <= 50 ms; (issue 18): CPU per
scenario <= SIPp's, 50 instances cold <= 3 s, -n 2 / -n 0 <= 0.77 at 200 scenarios.
The pytest runs leave out this repository's test-only plugins (hypothesis, pytest-html,
pytest-metadata) and run without PYTHONDONTWRITEBYTECODE (see PYTEST and _env).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pytest_sipflow.format import graph  # noqa: E402
from pytest_sipflow.agent.measure import cpu_seconds  # noqa: E402
from pytest_sipflow.engine.events import ActionLogEvent, ExecutionEvent  # noqa: E402
from pytest_sipflow.engine.runner import run_scenario  # noqa: E402
from pytest_sipflow.agent.pool import AgentPool  # noqa: E402
from pytest_sipflow.agent.ports import PortPlan  # noqa: E402
import cps  # noqa: E402  (benchmarks/cps.py: max steady CPS, sipflow against SIPp)

REPORTS = ("--sipflow-trace=all",)  # every report made for every passing item (issue 11)
SIPP_UAS_PORT = 15900
SIPP_UAC_PORT = 15902


def basic_call(i: int) -> str:
    """A calls B by dn, B answers, A hangs up at once, B sees the BYE: SIPp's uac flow."""
    def node(node_id: str, kind: str, **data: object) -> dict[str, object]:
        return {"id": node_id, "type": kind, "data": data}
    nodes = [node("a", "sipInstance", dn="100"), node("b", "sipInstance", dn="200"),
             node("call", "command", command="MakeCall", sipInstanceId="a", callId="c", targetUri="200"),
             node("bye", "command", command="Release", sipInstanceId="a", callId="c"),
             node("in", "event", event="INCOMING", sipInstanceId="b", callId="c"),
             node("ans", "command", command="Answer", sipInstanceId="b", callId="c"),
             node("gone", "event", event="DISCONNECTED", sipInstanceId="b", callId="c")]
    edges = [{"source": s, "target": t} for s, t in
             (("a", "call"), ("call", "bye"), ("b", "in"), ("in", "ans"), ("ans", "gone"))]
    return json.dumps({"name": f"basic call {i}", "nodes": nodes, "edges": edges})


def _env() -> dict[str, str]:
    """The pytest runs' environment: bytecode caching on (this machine's shell sets
    PYTHONDONTWRITEBYTECODE=1, which makes pytest re-rewrite the hypothesis plugin's
    modules in every process, ~1 CPU-s each; see docs/benchmarks.md)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


#: hypothesis, pytest-html and pytest-metadata are test dependencies of this repository
#: (its ``test`` extra), not of the plugin: a user's run does not load them, so the
#: measured runs do not either (each costs every pytest process ~20-50 ms, x3 with -n 2).
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
          "-p", "no:html", "-p", "no:metadata"]


def _children_cpu() -> float:
    """CPU seconds of every reaped descendant (pytest, its workers, fork server, agents)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def pytest_suite(folder: Path, workers: int, extra: tuple[str, ...] = ()) -> tuple[float, float, float]:
    """(wall seconds of the whole pytest run, mean seconds per test from junit, CPU
    seconds of the run: pytest, workers, agents)."""
    junit = folder / f"junit-{workers}{'-reports' if extra else ''}.xml"
    cmd = PYTEST + [str(folder),
           f"--junitxml={junit}", "-o", "junit_family=xunit2", "--rootdir", str(folder),
           "-c", os.devnull, "--sipflow-port-base", "17000", "--sipflow-rtp-port-base", "30000"]
    if workers:
        cmd += ["-n", str(workers)]
    cmd += list(extra)
    cpu0, start = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=folder, env=_env())
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"pytest run failed:\n{proc.stdout}\n{proc.stderr}")
    times = [float(tc.get("time", 0)) for tc in ET.parse(junit).iter("testcase")]
    return wall, statistics.mean(times), cpu


def empty_suite(folder: Path, workers: int) -> float:
    """Wall seconds of pytest running one trivial test: the fixed cost of a run."""
    (folder / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    cmd = PYTEST + [str(folder), "--rootdir", str(folder), "-c", os.devnull] + (
        ["-n", str(workers)] if workers else [])
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, cwd=folder, check=True, env=_env())
    return time.perf_counter() - start


def sipp_suite(n: int) -> tuple[float, float, float] | None:
    """(mean wall seconds of one `sipp -sn uac -m 1` process against one long-lived uas,
    uac CPU seconds per call, uas CPU seconds per call)."""
    sipp = shutil.which("sipp")
    if sipp is None:
        return None
    uas = subprocess.Popen([sipp, "-sn", "uas", "-i", "127.0.0.1", "-mi", "127.0.0.1",
                            "-p", str(SIPP_UAS_PORT), "-mp", "16000", "-nostdin", "-bg"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uas.wait(timeout=10)  # -bg: the parent prints the daemon's pid and exits
    time.sleep(0.3)
    uas_pid = _sipp_uas_pid()
    try:
        runs = []
        uas0, cpu0 = (cpu_seconds(uas_pid) if uas_pid else 0.0), _children_cpu()
        for _ in range(n):
            start = time.perf_counter()
            proc = subprocess.run([sipp, "-sn", "uac", f"127.0.0.1:{SIPP_UAS_PORT}", "-i", "127.0.0.1",
                                   "-mi", "127.0.0.1", "-p", str(SIPP_UAC_PORT), "-mp", "16100",
                                   "-m", "1", "-nostdin", "-timeout", "10s", "-timeout_error"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            runs.append(time.perf_counter() - start)
            if proc.returncode != 0:
                raise SystemExit(f"sipp uac failed with exit code {proc.returncode}")
        uac_cpu = (_children_cpu() - cpu0) / n
        uas_cpu = ((cpu_seconds(uas_pid) - uas0) / n) if uas_pid else 0.0
        return statistics.mean(runs), uac_cpu, uas_cpu
    finally:
        _stop_sipp_uas()


def _sipp_uas_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if args and args[0].endswith(b"sipp") and str(SIPP_UAS_PORT).encode() in args:
                return int(entry.name)
    return None


def _stop_sipp_uas() -> None:
    """End the background uas we started (found by its unique port argument)."""
    pid = _sipp_uas_pid()
    if pid is not None:
        os.kill(pid, 15)


def fifty_instances() -> tuple[float, float]:
    """(cold seconds: agents started inside; warm seconds: agents already in the pool)."""
    g = graph.load(REPO / "scenarios" / "scale" / "fifty-instances.sipflow.json")
    pool = AgentPool(PortPlan(sip_base=18000, sip_range=200, rtp_base=40000), name="bench")
    try:
        start = time.perf_counter()
        cold = run_scenario(g, pool)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        warm = run_scenario(g, pool)
        warm_s = time.perf_counter() - start
        if not (cold.passed and warm.passed):
            raise SystemExit(f"50-instance scenario failed: {cold.failure or warm.failure}")
        return cold_s, warm_s
    finally:
        pool.close()


def _real_mode(doc: dict[str, object], server: object, passwords: dict[str, str]) -> None:
    """Point every instance of ``doc`` at ``server`` (UDP), with its account's password."""
    host, port = server.registrar("udp").split(":")  # type: ignore[attr-defined]
    for node in doc["nodes"]:  # type: ignore[attr-defined]
        if node["type"] == "sipInstance":
            node["data"].update(pbxHost=host, pbxPort=port, password=passwords[node["data"]["dn"]])


def real_mode_call(n: int) -> tuple[float, float]:
    """(local, through Kamailio) mean seconds of one basic-call scenario, warm pool: the
    real-mode one registers both phones, calls through the proxy and un-REGISTERs."""
    from pytest_sipflow.testing import KamailioServer

    local = graph.from_value(json.loads(basic_call(0)), "local.sipflow.json")
    accounts = {"100": "pw-100-bench", "200": "pw-200-bench"}
    pool = AgentPool(PortPlan(sip_base=18000, sip_range=200, rtp_base=40000), name="real")
    try:
        with KamailioServer(accounts, tls=False) as server:
            doc = json.loads(basic_call(0))
            _real_mode(doc, server, accounts)
            real = graph.from_value(doc, "real.sipflow.json")
            means = []
            for g in (local, real):
                run_scenario(g, pool)  # warm-up: agents started, first registration done
                times = []
                for _ in range(n):
                    start = time.perf_counter()
                    result = run_scenario(g, pool)
                    times.append(time.perf_counter() - start)
                    if not result.passed:
                        raise SystemExit(f"basic call ({g.path}) failed: {result.failure}")
                means.append(statistics.mean(times))
            return means[0], means[1]
    finally:
        pool.close()


def fifty_registrations() -> tuple[float, float]:
    """50 instances registering at once with Kamailio, warm pool: (seconds until all are
    registered, seconds of the whole scenario with every un-REGISTER)."""
    from pytest_sipflow.testing import KamailioServer

    accounts = {str(3000 + i): f"pw-{3000 + i}-bench" for i in range(1, 51)}
    nodes: list[dict[str, object]] = []
    edges = []
    for dn in accounts:
        nodes.append({"id": f"p{dn}", "type": "sipInstance", "data": {"dn": dn}})
        nodes.append({"id": f"w{dn}", "type": "event",
                      "data": {"event": "TIMEOUT", "sipInstanceId": f"p{dn}", "timeout": 1}})
        edges.append({"source": f"p{dn}", "target": f"w{dn}"})
    doc = {"name": "fifty registrations", "nodes": nodes, "edges": edges}
    pool = AgentPool(PortPlan(sip_base=18000, sip_range=200, rtp_base=40000), name="reg")
    try:
        for agent in pool.acquire(50):  # warm: the agents exist before the clock starts
            pool.release(agent, True)
        with KamailioServer(accounts, tls=False) as server:
            _real_mode(doc, server, accounts)
            g = graph.from_value(doc, "fifty.sipflow.json")
            ready: list[float] = []

            def listen(event: ExecutionEvent) -> None:
                if isinstance(event, ActionLogEvent) and "registered (200" in event.message:
                    ready.append(event.timestamp)

            began, start = time.time(), time.perf_counter()
            result = run_scenario(g, pool, listener=listen)
            whole = time.perf_counter() - start
            if not result.passed or len(ready) != 50:
                raise SystemExit(f"50 registrations failed: {result.failure}, {len(ready)} ready")
            if any(server.registrations().values()):
                raise SystemExit("registrations were left behind")
            return max(ready) - began, whole
    finally:
        pool.close()


def media_call(n: int) -> list[tuple[float, float]]:
    """Basic call per scenario, engine only, warm pool: without media keys, then with
    expectMedia on B's DISCONNECTED (issue 15): B's agent watches RTP, reads the final
    statistics and the engine checks them. (ms, CPU ms of both agents and
    this process) per scenario for each."""
    plain = json.loads(basic_call(0))
    media = json.loads(basic_call(0))
    for node in media["nodes"]:
        if node["data"].get("event") == "DISCONNECTED":
            node["data"]["expectMedia"] = {"codec": "PCMU"}
    out = []
    pool = AgentPool(PortPlan(sip_base=18400, sip_range=40, rtp_base=41000), name="media")
    try:
        for doc in (plain, media):
            g = graph.from_value(doc, "media.sipflow.json")
            run_scenario(g, pool)  # warm-up
            agents = pool.acquire(2)
            pids = [a.pid for a in agents]
            for a in agents:
                pool.release(a, True)
            cpu0 = sum(cpu_seconds(p) for p in pids) + time.process_time()
            start = time.perf_counter()
            for _ in range(n):
                result = run_scenario(g, pool)
                if not result.passed:
                    raise SystemExit(f"media benchmark call failed: {result.failure}")
            wall = (time.perf_counter() - start) / n
            cpu = (sum(cpu_seconds(p) for p in pids) + time.process_time() - cpu0) / n
            out.append((wall * 1000, cpu * 1000))
    finally:
        pool.close()
    return out


def media_rows(n: int) -> list[tuple[str, str, str]]:
    (plain_ms, plain_cpu), (media_ms, media_cpu) = media_call(n)
    return [("basic call, engine only: no media keys / expectMedia on DISCONNECTED (ms)",
             f"{plain_ms:.1f} ms / {media_ms:.1f} ms", ""),
            ("same, CPU per scenario (both agents + engine): without / with",
             f"{plain_cpu:.1f} ms / {media_cpu:.1f} ms", "")]


def plugin_import_ms(runs: int = 7) -> float:
    """Median cost of importing the plugin on top of pytest (what every pytest run pays)."""
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c",
                              "import pytest; import pytest_sipflow.plugin"],
                             capture_output=True, text=True, check=True).stderr
        line = next(x for x in out.splitlines() if x.rstrip().endswith("| pytest_sipflow.plugin"))
        samples.append(int(line.split("|")[1]) / 1000.0)  # cumulative microseconds
    return statistics.median(samples)


def idle_agent_cpu(seconds: float = 5.0, settle: float = 5.0) -> tuple[float, float]:
    """(% of a core used by an idle agent, the same after it carried a call).

    Measured ``settle`` seconds after start-up or the call's end: pjsip's transaction
    timers of the last call still fire for a few seconds (about 0.2 % of a core then).
    """
    g = graph.from_value(json.loads(basic_call(0)), "idle.sipflow.json")
    pool = AgentPool(PortPlan(sip_base=18500, sip_range=20, rtp_base=44000), name="idle")
    try:
        agents = pool.acquire(2)
        for agent in agents:
            pool.release(agent, True)

        def measure() -> float:
            time.sleep(settle)  # let start-up or the last call's timers settle
            before = {a.pid: cpu_seconds(a.pid) for a in agents}
            time.sleep(seconds)
            used = [cpu_seconds(pid) - t for pid, t in before.items()]
            return max(used) / seconds * 100.0

        fresh = measure()
        if not run_scenario(g, pool).passed:
            raise SystemExit("basic call failed while measuring idle CPU")
        return fresh, measure()
    finally:
        pool.close()


def machine() -> str:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


READING = """## Reading the numbers
- *Test time* is pytest's own time per test (junit), which includes the first test's wait
  for the pool to warm up; *whole run / N* adds pytest's start-up and collection.
- SIPp's rows: one `sipp -sn uac -m 1` process per scenario against one long-running
  `sipp -sn uas`, as a SIPp-based suite runs it; its CPU is the uac processes' rusage plus
  the uas daemon's `/proc` CPU over the same calls.
- *CPU per basic-call scenario* is marginal: the CPU of every process of a `-n 0` run of
  M scenarios minus that of N, over M - N; pytest's start-up and collection, the fork
  server and the pool's start are fixed costs, in the *whole run / N* row.
- The pytest runs are made with `-p no:hypothesispytest -p no:html -p no:metadata` and
  without `PYTHONDONTWRITEBYTECODE`: hypothesis, pytest-html and pytest-metadata are test
  dependencies of this repository (its `test` extra), not the plugin's, and with
  `PYTHONDONTWRITEBYTECODE=1` (set on the machine that made these numbers) pytest
  re-rewrites its plugin's ~100 modules in every process, ~1 CPU-s each, ×3 with `-n 2`.
- `-n 2` against `-n 0`: xdist's own start-up (the empty-suite row: two more Pythons that
  import pytest and every plugin, then collect every file) is a fixed cost; on 2 cores
  `-n 2` gains only once a suite's run is several times that. Wall times need a quiet
  machine: on a shared one, compare the CPU rows.
- Real mode: the two basic-call rows run the same graph through the engine on one warm
  pool, N times each; the Kamailio one adds REGISTER with digest auth (401 + retry) for
  both phones before the clock starts, the proxy-authenticated INVITE (407 + retry), the
  record-routed dialog, and an un-REGISTER per phone at clean-up. The 50-registration
  rows start their clock when the scenario is handed to the engine (agents already
  started): *all registered* is when the last 200 to REGISTER was seen.
- Max steady CPS (`benchmarks/cps.py`): the basic call as a load run through the engine
  (`--sipflow-rate`, 12 iterations at once, agents pooled) and as `sipp -sn uac -r R -m N`
  against `sipp -sn uas`, same machine, same run: rungs of 3 s doubling the rate, then one
  halfway; a rung is steady when every call succeeds and they end at >= 90 % of the rate.
  sipflow's ceiling is the pytest process's CPU (each iteration configures and resets real
  agents and records every message; more concurrency does not raise it); SIPp is one C++
  process per side with no per-call set-up.
"""


def real_rows(n: int) -> list[tuple[str, str, str]]:
    local, real = real_mode_call(n)
    registered, whole = fifty_registrations()
    return [
        ("basic call per scenario, local (engine only, warm pool)", f"{local * 1000:.1f} ms", ""),
        ("basic call per scenario through Kamailio (REGISTER + call + un-REGISTER)",
         f"{real * 1000:.1f} ms", ""),
        ("50 instances registering at once with Kamailio: all registered", f"{registered:.2f} s",
         ""),
        ("50 instances with Kamailio: whole scenario incl. 50 un-REGISTERs", f"{whole:.2f} s", ""),
    ]


CPU_SECTION = "## Where a call's CPU goes"


def kept_sections(path: Path) -> str:
    """The hand-written part of the benchmarks page (from CPU_SECTION on), kept by --write."""
    try:
        text = path.read_text()
    except OSError:
        return ""
    i = text.find(CPU_SECTION)
    return "\n" + text[i:] if i >= 0 else ""


def table(rows: list[tuple[str, str, str]]) -> str:
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'measure'.ljust(width)} | value | target |", f"|{'-' * (width + 2)}|---|---|"]
    lines += [f"| {name.ljust(width)} | {value} | {target} |" for name, value, target in rows]
    return "\n".join(lines)


def suite_folder(root: Path, n: int) -> Path:
    folder = root / f"suite{n}"
    folder.mkdir()
    for i in range(n):
        (folder / f"call{i:03d}.sipflow.json").write_text(basic_call(i))
    return folder


def cpu_rows(n: int, m: int) -> list[tuple[str, str, str]]:
    """Issue 18's rows: CPU per scenario beside SIPp's, -n 2 / -n 0 at ``m`` scenarios,
    50-instance cold, idle and import cost."""
    with tempfile.TemporaryDirectory(prefix="sipflow-bench-") as tmp:
        small, big = suite_folder(Path(tmp), n), suite_folder(Path(tmp), m)
        bigger = suite_folder(Path(tmp), 2 * m)
        runs: dict[str, list[tuple[float, float, float]]] = {
            "n": [], "m0": [], "m2": [], "2m0": [], "2m2": []}
        for _ in range(2):  # interleaved; the best of two (the machine may be shared)
            runs["n"].append(pytest_suite(small, 0))
            runs["m0"].append(pytest_suite(big, 0))
            runs["m2"].append(pytest_suite(big, 2))
            runs["2m0"].append(pytest_suite(bigger, 0))
            runs["2m2"].append(pytest_suite(bigger, 2))
    best = {k: (min(r[0] for r in v), min(r[2] for r in v)) for k, v in runs.items()}
    per_scenario = (best["m0"][1] - best["n"][1]) / (m - n)
    sipp = sipp_suite(n)
    cold, warm = fifty_instances()
    idle, idle_after = idle_agent_cpu()
    import_ms = plugin_import_ms()
    rows = [
        (f"CPU per basic-call scenario, pytest -n 0 (marginal: runs of {m} and {n})",
         f"{per_scenario * 1000:.1f} CPU-ms", ""),
        (f"CPU of the whole -n 0 run / N (N = {n} / {m}, incl. pytest start, agents)",
         f"{best['n'][1] / n * 1000:.1f} / {best['m0'][1] / m * 1000:.1f} CPU-ms", ""),
    ]
    if sipp is not None:
        sipp_cpu = sipp[1] + sipp[2]
        rows += [("CPU per call, SIPp uac + uas (one uac process per call)",
                  f"{sipp[1] * 1000:.1f} + {sipp[2] * 1000:.1f} = {sipp_cpu * 1000:.1f} CPU-ms", ""),
                 ("CPU per scenario: sipflow / SIPp", f"{per_scenario / sipp_cpu:.2f}", "<= 1")]
    rows += [
        (f"suite of {m}, wall -n 0 / -n 2", f"{best['m0'][0]:.2f} s / {best['m2'][0]:.2f} s", ""),
        (f"suite of {m}, CPU -n 0 / -n 2", f"{best['m0'][1]:.2f} s / {best['m2'][1]:.2f} s", ""),
        (f"-n 2 / -n 0 at {m} scenarios (wall)", f"{best['m2'][0] / best['m0'][0]:.2f}", "<= 0.77"),
        (f"suite of {2 * m}, wall -n 0 / -n 2 (ratio)",
         f"{best['2m0'][0]:.2f} s / {best['2m2'][0]:.2f} s ({best['2m2'][0] / best['2m0'][0]:.2f})", ""),
        ("50-instance scenario, cold (fork server and 50 agent starts included)", f"{cold:.2f} s",
         "<= 3 s"),
        ("50-instance scenario, warm pool", f"{warm:.2f} s", "<= 5 s"),
        ("idle agent CPU, % of a core (fresh / after a call)", f"{idle:.2f} % / {idle_after:.2f} %",
         "<= 0.2 %"),
        ("plugin import on top of pytest (every pytest run pays it)", f"{import_ms:.1f} ms",
         "<= 50 ms"),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="scenarios in the basic-call suite")
    parser.add_argument("--m", type=int, default=200,
                        help="scenarios of the -n 2 / -n 0 comparison (and the marginal CPU)")
    parser.add_argument("--write", type=Path, help="also write the table to this markdown file")
    parser.add_argument("--only", choices=["real", "media", "cps", "cpu"],
                        help="run only these rows (no --write)")
    args = parser.parse_args()
    n = args.n
    if args.only == "real":
        print(table(real_rows(n)))
        return
    if args.only == "media":
        print(table(media_rows(n)))
        return
    if args.only == "cps":
        print(table(cps.rows(basic_call(0))))
        return
    if args.only == "cpu":
        print(table(cpu_rows(n, args.m)))
        return
    with tempfile.TemporaryDirectory(prefix="sipflow-bench-") as tmp:
        folder = Path(tmp)
        for i in range(args.n):
            (folder / f"call{i:03d}.sipflow.json").write_text(basic_call(i))
        wall0, per_test0, _ = pytest_suite(folder, 0)
        out = Path(tmp + "-out")  # outside the suite's folder: nothing collected from it
        wall_reports, per_test_reports, _ = pytest_suite(
            folder, 0, REPORTS + (f"--sipflow-pcap={out}", f"--sipflow-json={out}"))
        shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="sipflow-bench-empty-") as tmp:
        empty0, empty2 = empty_suite(Path(tmp), 0), empty_suite(Path(tmp), 2)
    sipp = sipp_suite(args.n)
    sipp_wall = sipp[0] if sipp else None
    rows = [
        ("basic call, sipflow, per scenario (test time, -n 0)", f"{per_test0 * 1000:.1f} ms", "<= 20 ms"),
        ("basic call, same, with " + " ".join(REPORTS) + " --sipflow-pcap --sipflow-json "
         "(files are written after the test time: see the whole run)",
         f"{per_test_reports * 1000:.1f} ms", ""),
        ("basic call, whole run / N, no reports / all reports",
         f"{wall0 / n * 1000:.1f} ms / {wall_reports / n * 1000:.1f} ms", ""),
        ("basic call, one SIPp uac process per scenario (wall)",
         f"{sipp_wall * 1000:.1f} ms" if sipp_wall else "sipp not installed", ""),
        ("speed-up over SIPp (test time)", f"{sipp_wall / per_test0:.1f}x" if sipp_wall else "-", ">= 5x"),
        (f"suite of {n}, wall time -n 0", f"{wall0:.2f} s", ""),
        ("pytest with one empty test, -n 0 / -n 2 (fixed cost of a run)", f"{empty0:.2f} s / {empty2:.2f} s", ""),
    ] + cpu_rows(n, args.m) + real_rows(n) + media_rows(n) + cps.rows(basic_call(0))
    stamp = f"Taken {datetime.date.today().isoformat()} on {machine()}."
    text = table(rows)
    print(stamp)
    print(text)
    if args.write:
        kept = kept_sections(args.write)
        args.write.write_text(f"# Benchmarks\n\nRun with `.venv/bin/python benchmarks/run.py` "
                              f"(N = {n}, M = {args.m}).\n\n{stamp}\n\n{text}\n\n{READING}{kept}")

if __name__ == "__main__":
    main()
