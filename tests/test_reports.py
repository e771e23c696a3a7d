"""The reports wired into pytest: ladder and trace of failures, JUnit, pcap, JSON, HTML.

pytester runs over real SIP, like tests/test_plugin.py.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, basic_call, chain, command, event, instance, scenario
from test_plugin import busy_without_branch

PASSWORD = "s3cr3t-pw"
LADDER_ORDER = ["SIP ladder:", "*alice*bob*", "*--- alice 'call', bob 'call' (Call-ID *) ---",
                "*|*INVITE*>|", "*|<*180 Ringing*|", "*|<*486 Busy Here*|", "*|*ACK*>|"]


def busy_with_password() -> str:
    """The busy call, but alice has a password and sends it in a header of the INVITE."""
    nodes = [instance("alice", "100", password=PASSWORD), instance("bob", "200"),
             command("dial", "MakeCall", "alice", callId="call", targetUri="200",
                     headers={"X-Token": PASSWORD}),
             event("ring", "INCOMING", "bob", callId="call"),
             command("busy", "Response", "bob", callId="call", statusCode=486)]
    return scenario(nodes, chain("alice", "dial") + chain("bob", "ring", "busy"), name="busy")


def junit_failure(path: Path) -> str:
    failures = list(ET.parse(path).iter("failure"))
    assert len(failures) == 1, ET.tostring(ET.parse(path).getroot())
    return failures[0].text or ""


# -- failure report: ladder and trace ------------------------------------------------------

def test_failing_busy_call_shows_ladder_in_order_then_trace_section(
        sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", busy=busy_without_branch())
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*paths:", "*bob  : ring*", "", *LADDER_ORDER,
                                 "*Captured sipflow SIP trace call*",
                                 "#1 * alice tx UDP 127.0.0.1:* -> 127.0.0.1:*",
                                 "INVITE sip:200@127.0.0.1:* SIP/2.0", "Via: SIP/2.0/UDP *",
                                 "CSeq: * INVITE"])
    ladder = result.stdout.str().split("SIP ladder:")[1].split("Captured sipflow")[0]
    assert "earlier message" not in ladder
    assert max(len(line) for line in ladder.splitlines()) <= 100


def test_ladder_and_trace_survive_xdist(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", busy=busy_without_branch(), basic=basic_call())
    result = sipflow_pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*[[]gw?[]]*", *LADDER_ORDER,
                                 "*Captured sipflow SIP trace call*", "Via: SIP/2.0/UDP *"])


def test_junit_failure_text_holds_ladder_and_full_messages(
        sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", busy=busy_without_branch())
    result = sipflow_pytester.runpytest("--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    text = junit_failure(sipflow_pytester.path / "junit.xml")
    labels = re.findall(r"\|.*?(INVITE|180 Ringing|486 Busy Here|ACK).*?\|", text.split(
        "SIP ladder:")[1].split("sipflow SIP trace:")[0])
    assert labels == ["INVITE", "180 Ringing", "486 Busy Here", "ACK"], text
    trace = text.split("sipflow SIP trace:")[1]
    assert re.search(r"^Via: SIP/2\.0/UDP 127\.0\.0\.1:\d+", trace, re.M), trace
    assert re.search(r"^CSeq: \d+ ACK$", trace, re.M), trace
    assert "sipflow SIP trace:" not in result.stdout.str(), "the terminal shows it as a section"


def test_junit_under_xdist_holds_the_trace(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", busy=busy_without_branch(), basic=basic_call())
    result = sipflow_pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider",
                                                   "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=1)
    text = junit_failure(sipflow_pytester.path / "junit.xml")
    assert "|<-------486 Busy Here--------|" in text and "\nCSeq: " in text, text


def test_ladder_lines_limits_the_ladder_and_says_how_many_were_left_out(
        sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", busy=busy_without_branch())
    result = sipflow_pytester.runpytest("--sipflow-ladder-lines", "2")
    result.assert_outcomes(failed=1)
    ladder = result.stdout.str().split("SIP ladder:")[1].split("Captured sipflow")[0]
    assert "... 3 earlier messages not shown" in ladder, ladder
    assert "486 Busy Here" in ladder and "ACK" in ladder
    assert "INVITE" not in ladder and "180 Ringing" not in ladder


def test_trace_all_shows_a_passing_items_trace_and_default_does_not(
        sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", basic=basic_call())
    quiet = sipflow_pytester.runpytest()
    quiet.assert_outcomes(passed=1)
    assert "Via:" not in quiet.stdout.str() and "SIP trace" not in quiet.stdout.str()
    result = sipflow_pytester.runpytest("--sipflow-trace=all")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*sipflow SIP traces of passed items*",
                                 "*sipflow scenario: *",
                                 "#1 * a tx UDP 127.0.0.1:* -> 127.0.0.1:*",
                                 "INVITE sip:200@127.0.0.1:* SIP/2.0", "Via: SIP/2.0/UDP *",
                                 "BYE sip:*", "SIP/2.0 200 OK"])


def test_trace_all_from_ini_and_rp_prints_it_once(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", basic=basic_call())
    result = sipflow_pytester.runpytest("-o", "sipflow_trace=all", "-rP")
    result.assert_outcomes(passed=1)
    assert result.stdout.str().count("\nINVITE sip:200@127.0.0.1") == 2  # tx and rx, once
    assert "sipflow SIP traces of passed items" not in result.stdout.str()


def test_trace_none_shows_no_trace_on_failure_but_the_ladder(
        sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", busy=busy_without_branch())
    result = sipflow_pytester.runpytest("--sipflow-trace=none", "--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(LADDER_ORDER)
    out = result.stdout.str()
    assert "Captured sipflow" not in out and "Via:" not in out
    assert "Via:" not in junit_failure(sipflow_pytester.path / "junit.xml")


def test_bad_report_option_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    for args, message in ((["--sipflow-trace=some"], "*--sipflow-trace*'some' is not one of "
                                                      "failed, all, none*"),
                          (["--sipflow-ladder-lines=-1"], "*--sipflow-ladder-lines*must not be "
                                                          "negative*"),
                          (["-o", "sipflow_ladder_lines=x"], "*sipflow_ladder_lines*whole number*")):
        result = pytester.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([message])


# -- files: pcap and JSON -----------------------------------------------------------------

def test_pcap_of_a_basic_call_reads_back_in_tshark(sipflow_pytester: pytest.Pytester) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed (Debian package tshark)")
    sipflow_pytester.makefile(".sipflow.json", basic=basic_call())
    sipflow_pytester.runpytest("--sipflow-pcap", "pcaps").assert_outcomes(passed=1)
    (pcap,) = (sipflow_pytester.path / "pcaps").iterdir()
    assert pcap.name == "basic.sipflow.json__basic.pcap"
    # sipflow_pytester's agents use ports 7000-9000: some of those are other protocols'
    # registered ports to tshark (8611-8614 is Canon BJNP), so say they carry SIP.
    out = subprocess.run([tshark, "-r", str(pcap), "-d", "udp.port==7000-9000,sip",
                          "-Y", "sip", "-T", "fields", "-e",
                          "sip.Method", "-e", "sip.Status-Code", "-e", "sip.Call-ID"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    seen = [method or code for method, code, _ in rows]
    assert [s for s in seen if s != "100"] == ["INVITE", "180", "200", "ACK", "BYE", "200"], rows
    assert len({call_id for _, _, call_id in rows}) == 1, rows


def schema() -> dict[str, Any]:
    text = (REPO / "docs" / "results-json.md").read_text()
    (block,) = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    return json.loads(block)


def check(value: Any, spec: dict[str, Any], where: str = "$") -> None:
    """The subset of JSON Schema the documented shape uses."""
    names = {"object": dict, "array": list, "string": str, "number": (int, float), "null": type(None)}
    if "const" in spec:
        assert value == spec["const"], where
    if "enum" in spec:
        assert value in spec["enum"], f"{where}: {value!r} not in {spec['enum']}"
    if "type" in spec:
        kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
        assert any(isinstance(value, names[k]) and not isinstance(value, bool) for k in kinds), (
            f"{where}: {value!r} is not {kinds}")
    if isinstance(value, dict):
        for key in spec.get("required", []):
            assert key in value, f"{where}: missing {key!r}"
        for key, item in value.items():
            sub = spec.get("properties", {}).get(key, spec.get("additionalProperties"))
            if isinstance(sub, dict):
                check(item, sub, f"{where}.{key}")
    if isinstance(value, list) and "items" in spec:
        for i, item in enumerate(value):
            check(item, spec["items"], f"{where}[{i}]")


def test_json_files_validate_against_the_documented_shape(
        sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", busy=busy_without_branch(), basic=basic_call())
    sipflow_pytester.runpytest("--sipflow-json", "out/json").assert_outcomes(passed=1, failed=1)
    files = sorted((sipflow_pytester.path / "out" / "json").iterdir())
    assert [f.name for f in files] == ["basic.sipflow.json__basic.json",
                                       "busy.sipflow.json__busy.json"]
    basic, busy = (json.loads(f.read_text()) for f in files)
    for doc in (basic, busy):
        check(doc, schema())
    assert (basic["outcome"], basic["failure"], busy["outcome"]) == ("passed", None, "failed")
    assert busy["failure"]["node"] == "dial" and busy["paths"]["bob"] == ["ring", "busy"]
    assert [m["summary"].split(" ")[0] for m in busy["messages"] if m["dir"] == "tx"] == [
        "INVITE", "SIP/2.0", "SIP/2.0", "SIP/2.0", "ACK"]
    assert all(m["local"] and m["remote"] and m["sip_call_id"] for m in busy["messages"])
    sip = [e for e in busy["events"] if e["type"] == "action-log" and e["level"] == "sip"]
    assert {e["direction"] for e in sip} == {"sent", "received"}
    assert all(e["sipText"].startswith(e["sipMessage"]) for e in sip)


# -- secrets ------------------------------------------------------------------------------

def test_a_password_never_appears_in_any_output(sipflow_pytester: pytest.Pytester) -> None:
    html = importlib_available("pytest_html")
    sipflow_pytester.makefile(".sipflow.json", busy=busy_with_password())
    args = ["--sipflow-pcap", "out", "--sipflow-json", "out", "--junitxml=out/junit.xml",
            "-rA"] + (["--html=out/report.html"] if html else [])
    result = sipflow_pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    out = result.stdout.str() + result.stderr.str()
    assert "X-Token: *****" in out, "the header was sent and masked in the trace"
    files = sorted(p for p in (sipflow_pytester.path / "out").rglob("*") if p.is_file())
    names = {p.suffix for p in files}
    assert {".pcap", ".json", ".xml"} | ({".html"} if html else set()) <= names, files
    assert PASSWORD not in out
    for path in files:
        data = path.read_bytes()
        assert PASSWORD.encode() not in data, path
        assert base64.b64encode(PASSWORD.encode()) not in data, path
    doc = json.loads(next(p for p in files if p.suffix == ".json").read_text())
    raw = [base64.b64decode(m["raw"]) for m in doc["messages"] if m["raw"]]
    assert all(PASSWORD.encode() not in r for r in raw)


def importlib_available(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# -- pytest-html ----------------------------------------------------------------------------

def test_pytest_html_extras_carry_the_svg_ladder_and_trace(
        sipflow_pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    sipflow_pytester.makefile(".sipflow.json", busy=busy_without_branch(), basic=basic_call())
    result = sipflow_pytester.runpytest("--html=report.html", "--self-contained-html")
    result.assert_outcomes(passed=1, failed=1)
    page = (sipflow_pytester.path / "report.html").read_text()
    blob = re.search(r'data-jsonblob="(.*?)"', page, flags=re.S)
    assert blob, page[:2000]
    import html as html_mod

    data = json.loads(html_mod.unescape(blob.group(1)))
    extras = {test_id: [e for run in runs for e in run.get("extras", [])]
              for test_id, runs in data["tests"].items()}
    assert len(extras) == 2
    for test_id, items in extras.items():
        fragments = [e["content"] for e in items if e.get("format_type") == "html"]
        assert len(fragments) == 1, (test_id, items)
        assert 'class="sipflow-report"' in fragments[0] and "<svg" in fragments[0]
        assert "INVITE sip:200@127.0.0.1:" in fragments[0]  # the trace
    busy = next(items for test_id, items in extras.items() if "busy" in test_id)
    assert ">486 Busy Here</text>" in busy[0]["content"]


def test_without_html_report_no_extras_are_added(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", basic=basic_call())
    sipflow_pytester.makeconftest("""
        import json
        def pytest_runtest_logreport(report):
            if report.when == "call":
                open("extras.json", "w").write(json.dumps(getattr(report, "extras", None)))
        """)
    sipflow_pytester.runpytest().assert_outcomes(passed=1)
    assert json.loads((sipflow_pytester.path / "extras.json").read_text()) in (None, [])


# -- costs nothing when unused --------------------------------------------------------------

IMPORTS_REPORTER = """
    import json, sys
    def pytest_sessionfinish(session):
        names = sorted(m for m in sys.modules
                       if m.startswith("pytest_sipflow.reporting") or m.split(".")[0] == "dpkt")
        open("imported.json", "w").write(json.dumps(names))
    """


def test_passing_items_import_no_report_module_unless_asked(
        sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", basic=basic_call())
    sipflow_pytester.makeconftest(IMPORTS_REPORTER)
    imported = sipflow_pytester.path / "imported.json"
    sipflow_pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert json.loads(imported.read_text()) == []
    sipflow_pytester.runpytest_subprocess("-p", "no:cacheprovider", "--sipflow-trace=none",
                                          ).assert_outcomes(passed=1)
    assert json.loads(imported.read_text()) == []
    sipflow_pytester.runpytest_subprocess("-p", "no:cacheprovider", "--sipflow-pcap=p",
                                          ).assert_outcomes(passed=1)
    names = json.loads(imported.read_text())
    assert "pytest_sipflow.reporting.pcap" in names and "dpkt" in names, names


# -- hooks ----------------------------------------------------------------------------------

def test_action_log_hook_gets_direction_and_whole_message(
        sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", basic=basic_call())
    sipflow_pytester.makeconftest("""
        import json
        seen = []
        def pytest_sipflow_action_log(item, event):
            if event.level == "sip":
                seen.append([event.direction, event.sip_message, event.sip_text,
                             event.as_dict()["sipText"] == event.sip_text])
        def pytest_sessionfinish(session):
            open("sip.json", "w").write(json.dumps(seen))
        """)
    sipflow_pytester.runpytest().assert_outcomes(passed=1)
    seen = json.loads((sipflow_pytester.path / "sip.json").read_text())
    assert {d for d, *_ in seen} == {"sent", "received"}
    assert all(text.startswith(start) and "\nCSeq: " in text and same
               for _, start, text, same in seen), seen
    assert sorted(d for d, start, *_ in seen if start.startswith("BYE ")) == ["received", "sent"]


# -- docs ---------------------------------------------------------------------------------

def shape(text: str) -> list[str]:
    """Lines without numbers, Call-IDs and runs of blanks: what every run has in common."""
    text = re.sub(r"Call-ID [^)]+\)", "Call-ID)", text)
    return [re.sub(r"[\d\s]+", " ", line).strip() for line in text.strip().splitlines()]


def test_reading_a_failure_page_shows_a_real_run(sipflow_pytester: pytest.Pytester) -> None:
    page = (REPO / "docs" / "reading-a-failure.md").read_text()
    documented = re.findall(r"```text\n(.*?)\n```", page, flags=re.S)[0]
    text = re.findall(r"```json\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)[0]
    doc = json.loads(text)
    doc["edges"] = [e for e in doc["edges"] if e.get("sourceHandle") != "failure"]
    doc["nodes"] = [n for n in doc["nodes"] if n["id"] != "busy"]
    sipflow_pytester.makefile(".sipflow.json", busy=json.dumps(doc))
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    run = out[out.index("scenario 'Bob is busy' failed"):out.index("Captured sipflow")]
    run = run.rsplit("\n", 1)[0]  # up to the section's title line
    assert shape(run) == shape(documented)
    assert (REPO / "docs" / "img" / "report.png").stat().st_size < 300_000
    assert "](img/report.png)" in page


def test_real_mode_ladder_has_the_registrar_column(sipflow_pytester: pytest.Pytester) -> None:
    """Alice calls Bob through the test Kamailio; Bob answers 486: the ladder shows the server."""
    from pytest_sipflow.testing import available
    from support.kamailio import fixed_accounts

    missing = available(tls=False)
    if missing:
        pytest.skip(missing)
    doc = json.loads((REPO / "scenarios/real-mode/core-01-udp.sipflow.json").read_text())
    for node in doc["nodes"]:
        if node["id"] == "bob-answers":
            node["data"] = {**node["data"], "command": "Response", "statusCode": 486}
    doc["nodes"] = [n for n in doc["nodes"] if n["id"] != "bob-sees-bye"]
    doc["edges"] = [e for e in doc["edges"] if e["target"] != "bob-sees-bye"]
    sub = sipflow_pytester.mkdir("real-mode")
    shutil.copy(REPO / "scenarios" / "real-mode" / "conftest.py", sub / "conftest.py")
    (sub / "busy.sipflow.json").write_text(json.dumps(doc))
    result = sipflow_pytester.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=j.xml")
    result.assert_outcomes(failed=1)
    ladder = result.stdout.str().split("SIP ladder:")[1].split("Captured sipflow")[0]
    head = ladder.strip().splitlines()[0].split()
    assert head == ["alice", "bob", "registrar"], ladder
    arrows = [line for line in ladder.splitlines() if "|" in line and "-" in line]
    assert any("INVITE" in a for a in arrows) and any("486 Busy Here" in a for a in arrows)
    trace = junit_failure(sipflow_pytester.path / "j.xml").split("sipflow SIP trace:")[1]
    assert "REGISTER sip:" in trace and "Authorization: Digest" in trace
    out = result.stdout.str() + (sipflow_pytester.path / "j.xml").read_text()
    assert not any(password in out for password in fixed_accounts().values())
