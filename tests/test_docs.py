"""The documentation's examples run: README's scenario and the fixture pages' tests."""

from __future__ import annotations

import json
import re

import pytest

from conftest import REPO


def blocks(page: str, lang: str) -> list[str]:
    text = (REPO / page).read_text()
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("page", ["docs/sip_instance.md", "docs/scenario-fixture.md"])
def test_fixture_page_examples_run(sipflow_pytester: pytest.Pytester, page: str) -> None:
    (code,) = blocks(page, "python")
    sipflow_pytester.makepyfile(test_example=code)
    result = sipflow_pytester.runpytest("-v")
    count = len(re.findall(r"^def test_", code, flags=re.M))
    params = sum(len(p.split(",")) - 1 for p in re.findall(r"parametrize\(\"\w+\", \[(.*?)\]", code))
    result.assert_outcomes(passed=count + params)


def test_readme_scenario_passes_and_fails_without_its_failure_edge(
        sipflow_pytester: pytest.Pytester) -> None:
    text = blocks("README.md", "json")[0]  # the scenario; the next block is a real-mode fragment
    doc = json.loads(text)
    sipflow_pytester.makefile(".sipflow.json", busy=json.dumps(doc))
    sipflow_pytester.runpytest().assert_outcomes(passed=1)
    doc["edges"] = [e for e in doc["edges"] if e.get("sourceHandle") != "failure"]
    doc["nodes"] = [n for n in doc["nodes"] if n["id"] != "busy"]
    sipflow_pytester.makefile(".sipflow.json", busy=json.dumps(doc))
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*failing node: 'dial' (instance 'alice', MakeCall)",
                                 "*actual:   486 Busy Here"])


def test_fixtures_are_listed_with_docstrings(sipflow_pytester: pytest.Pytester) -> None:
    result = sipflow_pytester.runpytest("--fixtures", "-v")
    result.stdout.fnmatch_lines(["sip_instance*", "*Live SIP user agents for a Python test*",
                                 "*alice.call(\"200\")*"])
    result.stdout.fnmatch_lines(["scenario*", "*Run SIPFLOW graphs from Python*",
                                 "*scenario.run(\"busy.sipflow.json\"*"])


def test_options_page_lists_every_option() -> None:
    from pytest_sipflow.glue.options import OPTIONS

    page = (REPO / "docs" / "options.md").read_text()
    missing = [opt.flag for opt in OPTIONS
               if f"`{opt.flag}" not in page or f"`{opt.name}`" not in page]
    assert not missing, f"docs/options.md does not list {missing}"
