"""Scenario coverage: counting runs, merging them (xdist), the table, fail-under, the HTML."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from pytest_sipflow.reporting.coverage import (Coverage, FileCoverage, FlowShape, fail_under,
                                               from_documents, states_of)
from pytest_sipflow.reporting.coverage_html import layout, render_graph, render_page

ROOT = Path(__file__).resolve().parent.parent / "scenarios"
BUSY = str(ROOT / "busy-failure-branch.sipflow.json")
BASIC = str(ROOT / "basic-call.sipflow.json")

# What the engine leaves when Bob answers instead of being busy (success branch only) ...
ANSWERED = {"alice-calls-bob": "completed", "unexpected-answer": "completed",
            "busy-is-expected": "pending", "bob-rings": "completed", "bob-is-busy": "completed"}
# ... and when he is busy (MakeCall fails, its failure branch runs).
BUSY_RUN = {"alice-calls-bob": "failed", "unexpected-answer": "pending",
            "busy-is-expected": "completed", "bob-rings": "completed", "bob-is-busy": "completed"}


def test_shape_reads_steps_branches_and_the_editor_wrapper() -> None:
    shape = FlowShape.load(BUSY)
    assert shape.steps == ["alice-calls-bob", "unexpected-answer", "busy-is-expected",
                           "bob-rings", "bob-is-busy"]
    assert shape.branch_nodes == ["alice-calls-bob"]
    assert shape.name == "Bob is busy"
    inner = json.loads(Path(BUSY).read_text())
    wrapped = FlowShape.from_document({"name": "w", "flowData": json.dumps(inner)}, "w.json")
    assert wrapped.branch_nodes == ["alice-calls-bob"] and wrapped.name == "w"
    by_data = {"nodes": inner["nodes"], "edges": [
        {"source": "alice-calls-bob", "target": "busy-is-expected",
         "data": {"branchType": "failure"}}]}
    assert FlowShape.from_document(by_data, "d.json").branch_nodes == ["alice-calls-bob"]
    assert FlowShape.from_dict(shape.to_dict()) == shape


def test_a_failure_branch_that_never_ran_is_reported_by_node_id() -> None:
    cov = Coverage()
    cov.add_run(FlowShape.load(BUSY), ANSWERED)
    file = cov.files[BUSY]
    assert file.missed == ["busy-is-expected"]
    assert file.not_taken == ["alice-calls-bob"]
    assert file.counts == (5, 4, 1, 0)
    assert round(file.percent, 1) == round(100 * 4 / 6, 1)
    table = cov.table()
    assert "never ran: busy-is-expected" in table
    assert "failure branch never taken: alice-calls-bob" in table
    assert table.splitlines()[0].split() == ["Name", "Nodes", "Ran", "Miss", "Branch",
                                             "Taken", "Cover"]
    assert table.splitlines()[-1].split() == ["TOTAL", "5", "4", "1", "1", "0", "67%"]


def test_runs_merge_across_processes_like_xdist() -> None:
    busy_shape, basic_shape = FlowShape.load(BUSY), FlowShape.load(BASIC)
    worker1, worker2 = Coverage(), Coverage()
    worker1.add_run(busy_shape, ANSWERED)
    worker1.add_run(basic_shape, {n: "completed" for n in basic_shape.steps})
    worker2.add_run(busy_shape, BUSY_RUN)
    controller = Coverage()
    for worker in (worker1, worker2):  # what crosses the wire is JSON
        controller.merge(json.loads(json.dumps(worker.to_dict())))
    busy = controller.files[BUSY]
    assert (busy.runs, busy.missed, busy.not_taken, busy.counts) == (2, [], [], (5, 5, 1, 1))
    assert controller.percent == 100.0 and controller.counts == (11, 11, 1, 1)
    assert fail_under(controller, 100) is None
    # each worker alone was not complete; merged state does not depend on the order
    other = Coverage()
    other.merge(worker2)
    other.merge(worker1)
    assert other.to_dict() == controller.to_dict()


def test_fail_under() -> None:
    cov = Coverage()
    cov.add_run(FlowShape.load(BUSY), ANSWERED)
    assert fail_under(cov, None) is None and fail_under(cov, 60) is None
    message = fail_under(cov, 90)
    assert message is not None and "66.67%" in message and "90%" in message


def test_states_and_coverage_from_result_documents() -> None:
    doc = {"item": f"{BUSY}::Bob is busy",
           "nodes": {i: {"state": s} for i, s in BUSY_RUN.items()}}
    assert states_of(doc) == BUSY_RUN
    cov = from_documents([doc, {"item": "other.sipflow.json::x", "nodes": {}}],
                         {BUSY: FlowShape.load(BUSY)})
    assert list(cov.files) == [BUSY] and cov.files[BUSY].taken == {"alice-calls-bob"}


def test_a_failure_without_a_branch_is_a_failed_node() -> None:
    cov = FileCoverage(FlowShape.load(BASIC))
    cov.add_run({"alice-calls-bob": "failed", "bob-rings": "completed",
                 "bob-answers": "cancelled", "talk": "skipped"})
    assert [cov.outcome(n) for n in ("alice-calls-bob", "bob-rings", "bob-answers", "talk")] \
        == ["failed", "ok", "ok", "never"]


class Nodes(HTMLParser):
    """The graph's nodes (class, data-node) and edges (class, dash) and rect positions."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[str, str] = {}
        self.rects: list[tuple[float, float]] = []
        self.edges: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "g" and "node" in str(a.get("class")):
            self.nodes[str(a["data-node"])] = str(a["class"]).split()[1]
        elif tag == "rect" and a.get("rx"):
            self.rects.append((float(a["x"] or 0), float(a["y"] or 0)))
        elif tag == "line":
            self.edges.append(a)


def test_html_colours_nodes_by_outcome_and_dashes_failure_edges() -> None:
    cov = Coverage()
    cov.add_run(FlowShape.load(BUSY), ANSWERED)
    page = render_page(cov)
    parser = Nodes()
    parser.feed(page)
    assert parser.nodes == {"alice": "instance", "bob": "instance",
                            "alice-calls-bob": "untaken", "unexpected-answer": "ok",
                            "busy-is-expected": "never", "bob-rings": "ok", "bob-is-busy": "ok"}
    failure = [e for e in parser.edges if "failure" in str(e["class"])]
    assert len(failure) == 1 and failure[0]["stroke"] == "#c62828"
    assert failure[0]["stroke-dasharray"] and failure[0]["opacity"] == "0.45"
    assert len(set(parser.rects)) == 7  # all at (0, 0) in the file: laid out in layers
    assert "failure branch never taken: alice-calls-bob" in page


def test_editor_positions_are_kept() -> None:
    doc = json.loads(Path(BUSY).read_text())
    for i, node in enumerate(doc["nodes"]):
        node["position"] = {"x": 300 * i, "y": 50 * (i % 2)}
    shape = FlowShape.from_document(doc, "p.json")
    assert layout(shape)["bob"] == (300, 50) and layout(shape)["alice-calls-bob"] == (600, 0)
    parser = Nodes()
    parser.feed(render_graph(FileCoverage(shape)))
    assert (300.0, 50.0) in parser.rects and (900.0, 50.0) in parser.rects
    assert set(parser.nodes.values()) == {"instance", "never"}  # no run: nothing ran
