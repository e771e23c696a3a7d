"""The capability probe and its skips: IPv6 items never start where the wheel lacks it.

The probe's verdict parsing is checked on the output this wheel really gives; the pytest
runs ask the probe themselves, so they expect a skip here and a pass where IPv6 works.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import basic_call, chain, event, instance, scenario
from pytest_sipflow.agent.capabilities import (IPV6_REASON, Capabilities, Probe, Verdict,
                                               from_json, is_ipv6, parse_probe, skip_reason,
                                               to_json)
from pytest_sipflow.core.needs import run_needs, scenario_needs
from pytest_sipflow.core.settings import EngineSettings
from pytest_sipflow.format.graph import from_value
from pytest_sipflow.testing import KamailioServer, available

#: What this machine's pjsua2 2.15.1 wheel printed (pjlib's banner included) and how it died.
STDOUT = """03:56:13.897         os_core_unix.c !pjlib 2.15.1 for POSIX initialized
{"check": "codecs", "value": ["speex/16000/1", "PCMU/8000/1", "PCMA/8000/1", "L16/44100/2"]}
{"check": "tls", "ok": true, "why": ""}
{"check": "srtp-sdes", "ok": true, "why": ""}
{"check": "dtls-srtp", "ok": false, "why": "a DTLS-SRTP call ends: 488 Not Acceptable Here"}
{"check": "ipv6-start"}
"""
STDERR = ("python: ../src/pjsua-lib/pjsua_acc.c:467: pjsua_acc_add: Assertion "
          "`cfg->ipv6_media_use == PJSUA_IPV6_DISABLED' failed.\n")
ASSERTED = "pjsua_acc_add asserts cfg->ipv6_media_use == PJSUA_IPV6_DISABLED"


@pytest.fixture(scope="module")
def found() -> Capabilities:
    """This installation's verdicts, from a real probe process."""
    return Probe().result()


# -- verdicts -------------------------------------------------------------------------------


def test_an_ipv6_assert_is_read_as_no_with_the_assertion_as_reason() -> None:
    caps = parse_probe(STDOUT, STDERR, -6)
    assert caps.verdict("tls") == Verdict(True) and caps.verdict("srtp-sdes") == Verdict(True)
    assert caps.verdict("dtls-srtp").ok is False
    assert caps.verdict("ipv6") == Verdict(False, ASSERTED)
    assert caps.describe() == (
        "TLS yes, SRTP-SDES yes, DTLS-SRTP no (a DTLS-SRTP call ends: 488 Not Acceptable "
        f"Here), IPv6 no ({ASSERTED}), codecs speex/16000 PCMU/8000 PCMA/8000 L16/44100/2")
    assert skip_reason(caps, ["ipv6"]) == f"{IPV6_REASON} ({ASSERTED})"
    assert skip_reason(caps, ["tls", "srtp-sdes"]) is None
    assert skip_reason(caps, ["dtls-srtp"]) == ("DTLS-SRTP: not available in the installed "
                                                "pjsua2 wheel (a DTLS-SRTP call ends: 488 "
                                                "Not Acceptable Here)")


def test_a_working_ipv6_call_is_yes_and_a_stuck_probe_is_unknown() -> None:
    works = STDOUT + '{"check": "ipv6", "ok": true, "why": ""}\n'
    assert parse_probe(works, "", 0).verdict("ipv6") == Verdict(True)
    assert skip_reason(parse_probe(works, "", 0), ["ipv6"]) is None
    stuck = parse_probe(STDOUT.split('{"check": "srtp-sdes"')[0], "", None)
    assert stuck.verdict("ipv6") == Verdict(None, "the probe timed out")
    assert skip_reason(stuck, ["ipv6"]) == f"{IPV6_REASON} (the probe timed out)"
    died = parse_probe("", "Segmentation fault", -11)
    assert died.verdict("tls").ok is None and "status -11" in died.verdict("tls").why
    assert died.codecs == ()


def test_verdicts_survive_the_cache_round_trip_and_junk_is_refused() -> None:
    caps = parse_probe(STDOUT, STDERR, -6)
    assert from_json(json.loads(json.dumps(to_json(caps)))) == caps
    assert from_json({"verdicts": 3}) is None and from_json(None) is None


def test_the_real_probe_answers_every_check(found: Capabilities) -> None:
    assert all(v.ok is not None for v in found.verdicts.values()), found
    assert "PCMU/8000/1" in found.codecs and "PCMA/8000/1" in found.codecs


# -- what an item needs -----------------------------------------------------------------------


@pytest.mark.parametrize("text, v6", [
    ("::1", True), ("[::1]:5060", True), ("sip:[::1]:5060;lr", True), ("<sip:u@[::1]>", True),
    ("127.0.0.1:5060", False), ("sip:pbx.example.com;lr", False), ("", False), (None, False)])
def test_ipv6_hosts_are_recognised(text: str | None, v6: bool) -> None:
    assert is_ipv6(text) is v6


def call_graph(**alice: Any) -> Any:
    return from_value(json.loads(scenario(
        [instance("alice", "100", **alice), event("wait", "TIMEOUT", "alice", timeout=1)],
        chain("alice", "wait"))))


def test_needs_come_from_the_accounts_and_the_run() -> None:
    local = EngineSettings()
    assert scenario_needs(call_graph().instances.values(), local) == set()
    assert scenario_needs(call_graph().instances.values(),
                          EngineSettings(bind_address="::1")) == {"ipv6"}
    graph = call_graph(pbxHost="[::1]", pbxPort=5070, pbxTransport="TLS")
    assert scenario_needs(graph.instances.values(), local) == {"ipv6", "tls"}
    assert run_needs(EngineSettings(registrar="[::1]:5060")) == {"ipv6"}


def test_srtp_keys_need_their_keying() -> None:
    from types import SimpleNamespace as NS

    from pytest_sipflow.format.schema import SipInstanceData

    def inst(**srtp: Any) -> Any:
        return NS(id="a", data=SipInstanceData.model_validate({"dn": "100", **srtp}))

    assert scenario_needs([inst(srtp="mandatory", srtpKeying="dtls")], EngineSettings()) \
        == {"dtls-srtp"}
    assert scenario_needs([inst(srtp="optional")], EngineSettings()) == {"srtp-sdes"}
    assert scenario_needs([inst(srtp="disabled", srtpKeying="dtls")], EngineSettings()) == set()
    assert run_needs(EngineSettings(registrar="127.0.0.1:5060")) == set()


# -- pytest runs ------------------------------------------------------------------------------


def expect_ipv6(result: pytest.RunResult, found: Capabilities, items: int) -> None:
    """Skipped with the probe's reason where the wheel lacks IPv6, passed where it has it."""
    if found.verdict("ipv6").ok:
        result.assert_outcomes(passed=items)
        return
    result.assert_outcomes(skipped=items)
    reason = skip_reason(found, ["ipv6"])
    assert reason is not None and reason.startswith(IPV6_REASON)
    result.stdout.fnmatch_lines([f"SKIPPED [[]{items}[]] *: {reason}"])


def test_a_local_call_bound_to_ipv6_is_skipped_naming_the_wheel(
        sipflow_pytester: pytest.Pytester, found: Capabilities) -> None:
    sipflow_pytester.makefile(".sipflow.json", v6=basic_call())
    result = sipflow_pytester.runpytest("-rs", "--sipflow-bind-address", "::1")
    expect_ipv6(result, found, 1)
    ipv6 = found.verdict("ipv6").describe()
    result.stdout.fnmatch_lines([f"sipflow: capabilities: TLS *, IPv6 {ipv6}, codecs *PCMU/8000*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_python_test_with_agents_on_ipv6_is_skipped_too(
        sipflow_pytester: pytest.Pytester, found: Capabilities) -> None:
    sipflow_pytester.makepyfile(test_v6="""
        def test_call(sip_instance):
            alice, bob = sip_instance("alice", dn="100"), sip_instance("bob", dn="200")
            call = alice.call("200")
            bob.wait_incoming().answer()
            call.wait_confirmed()

        def test_plain():
            pass
    """)
    result = sipflow_pytester.runpytest("-rs", "--sipflow-bind-address=::1")
    if found.verdict("ipv6").ok:
        result.assert_outcomes(passed=2)
    else:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines([f"SKIPPED [[]1[]] test_v6.py*: {IPV6_REASON} (*"])


@pytest.mark.skipif(available() is not None, reason=str(available()))
def test_a_real_mode_call_to_an_ipv6_registrar_is_skipped(
        kamailio: KamailioServer, sipflow_pytester: pytest.Pytester, found: Capabilities) -> None:
    if found.verdict("ipv6").ok:
        pytest.skip("this wheel has IPv6: the suite's Kamailio listens on 127.0.0.1 only")
    user = "1001"
    doc = scenario([instance("alice", user, pbxHost="[::1]", pbxPort=kamailio.udp_port,
                             password=kamailio.users.get(user, "x")),
                    event("wait", "TIMEOUT", "alice", timeout=1)], chain("alice", "wait"))
    sipflow_pytester.makefile(".sipflow.json", v6real=doc)
    seen = len(kamailio.requests())
    result = sipflow_pytester.runpytest("-rs")
    expect_ipv6(result, found, 1)
    assert kamailio.requests()[seen:] == []  # skipped before any agent spoke


def test_no_probe_without_agents_to_run(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "sipflow: capabilities" not in result.stdout.str()


PROBE_REPORTER = """
from pytest_sipflow.glue.keys import session_key

def pytest_sessionfinish(session):
    worker = getattr(session.config, "workerinput", None)  # not the env: the outer run's
    name = worker["workerid"] if worker else "controller"
    probed = session.config.stash[session_key].probed
    with open(f"probed-{name}.txt", "w") as f:
        f.write(str(probed))
"""


def test_xdist_workers_probe_only_for_items_that_need_a_capability(
        sipflow_pytester: pytest.Pytester) -> None:
    # Bug: every worker started the probe (a pjsua2 process) for a report line only the
    # controller prints, while the workers collected.
    sipflow_pytester.makefile(".sipflow.json", plain=basic_call())
    sipflow_pytester.makeconftest(PROBE_REPORTER)
    result = sipflow_pytester.runpytest_subprocess("-n", "1")
    result.assert_outcomes(passed=1)
    assert (sipflow_pytester.path / "probed-gw0.txt").read_text() == "False"
    assert (sipflow_pytester.path / "probed-controller.txt").read_text() == "False"
    result = sipflow_pytester.runpytest_subprocess()  # -n 0 prints the line: it probes
    result.assert_outcomes(passed=1)
    assert (sipflow_pytester.path / "probed-controller.txt").read_text() == "True"
    result.stdout.fnmatch_lines(["sipflow: capabilities: TLS *"])
