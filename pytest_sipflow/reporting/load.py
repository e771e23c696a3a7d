"""A load run's KPIs for every output: terminal text, JSON ``kpi``, JUnit properties, HTML.

``kpi_document`` is JSON-safe (it crosses xdist and lands in the results JSON); the HTML
fragment is drawn from that document alone, so the report viewer draws the same plots.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .kpi import CallTimes, Iteration, Kpis, check_slo
from .kpi_svg import histogram, rate_plot
from .view import ItemView

if TYPE_CHECKING:
    from ..engine.result import ScenarioResult
    from ..format.graph import Graph


def kpis_of(results: Sequence["ScenarioResult"], graph: "Graph | None" = None) -> Kpis:
    """KPIs of the iterations, each read from its instances' SIP records."""
    return Kpis.of(Iteration.of(i, r.passed, ItemView.of(r, graph).records, _mos(r))
                   for i, r in enumerate(results))


def _mos(result: "ScenarioResult") -> float | None:
    """The lowest MOS of the iteration, when media statistics came with it."""
    from ..media.stats import MediaStats

    values = []
    for calls in result.media.values():  # instance -> callId -> agent statistics
        for raw in calls.values():
            est = None if raw is None else MediaStats.from_dict(raw).mos("rx")
            if est is not None:
                values.append(est.mos)
    return min(values) if values else None


def kpi_document(kpis: Kpis, slo_missed: Sequence[str] = ()) -> dict[str, Any]:
    """``{"summary": …, "calls": [[started, pddMs, setupMs], …], "registerMs": […],
    "sloMissed": […]}``: what the results JSON's ``kpi`` key holds."""
    return {"summary": kpis.summary(),
            "calls": [[c.started, c.pdd_ms, c.setup_ms] for c in kpis.calls],
            "registerMs": list(kpis.register_ms), "text": kpis.text(),
            "sloMissed": list(slo_missed)}


def slo_lines(graph: "Graph", kpis: Kpis) -> list[str]:
    return check_slo(graph.slo, kpis) if graph.slo is not None else []


def junit_properties(document: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``sipflow.kpi.<name>`` for every measured KPI (JUnit ``<property>`` elements)."""
    return [(f"sipflow.kpi.{k}", v) for k, v in document["summary"].items() if v is not None]


def kpi_html(document: Mapping[str, Any], title: str = "KPIs") -> str:
    """The KPI table and the plots: setup-time histogram, PDD histogram, calls per second."""
    calls = [CallTimes(float(c[0]), c[1], c[2]) for c in document.get("calls") or ()]
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(_show(v))}</td></tr>"
                   for k, v in (document.get("summary") or {}).items())
    missed = "".join(f"<li>{escape(line)}</li>" for line in document.get("sloMissed") or ())
    plots = [histogram([c.setup_ms for c in calls if c.setup_ms is not None])]
    pdd = [c.pdd_ms for c in calls if c.pdd_ms is not None]
    if pdd:
        plots.append(histogram(pdd, "post-dial delay (ms)"))
    plots.append(rate_plot(calls))
    return (f'<div class="sipflow-kpi"><h3>{escape(title)}</h3>'
            + (f'<ul class="slo-missed" style="color:#c62828">{missed}</ul>' if missed else "")
            + f'<table class="kpi">{rows}</table>' + "".join(plots) + "</div>")


def _show(value: Any) -> str:
    return "n/a" if value is None else str(value)
