"""The report of an evaluation: report.json, and report.html, one static page (styles and SVG
plots inline, no scripts, no links to fetch), so it reads the same offline, attached to an email
or opened from CI artifacts."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

SCORE_PLOTS = (
    ("retrieval", "ndcg@10", "Retrieval nDCG@10"),
    ("retrieval", "mrr@10", "Retrieval MRR@10"),
    ("faithfulness", "score", "Faithfulness"),
    ("citations", "recall", "Citation recall"),
    ("citations", "precision", "Citation precision"),
    ("correctness", "token_f1", "Token F1"),
    ("correctness", "rouge_l", "ROUGE-L"),
    ("correctness", "embedding_similarity", "Embedding similarity"),
)
LATENCY_STAGES = (
    ("retrieval_ms", "retrieval"),
    ("first_token_ms", "first token"),
    ("generation_ms", "generation"),
    ("total_ms", "answer total"),
    ("ranking_ms", "ranking (metrics)"),
    ("judge_ms", "judging"),
)


def worst_questions(rows: list[dict[str, Any]], count: int = 10) -> list[dict[str, Any]]:
    """The questions with the lowest faithfulness, then citation recall (failures first)."""

    def key(row: dict[str, Any]) -> tuple[float, float, float]:
        if "error" in row:
            return (-1.0, -1.0, -1.0)
        faith = (row.get("faithfulness") or {}).get("score")
        recall = (row.get("citations") or {}).get("recall")
        support = (row.get("faithfulness") or {}).get("support", 1.0)
        return (
            1.0 if faith is None else faith,
            1.0 if recall is None else recall,
            support,
        )

    return sorted(rows, key=key)[:count]


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write out_dir/report.json and out_dir/report.html; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "report.json", out_dir / "report.html"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    html_path.write_text(render_report_html(report), encoding="utf-8")
    return json_path, html_path


def render_report_html(report: dict[str, Any], worst: int = 10) -> str:
    """The report as one self-contained HTML page."""
    rows = report["questions"]
    context = {
        "report": report,
        "settings": report["settings"],
        "judges": report["judges"],
        "aggregate_rows": _aggregate_rows(report["aggregates"], report["judges"]),
        "latency_rows": _latency_rows(report["aggregates"].get("latency_ms", {})),
        "score_plot": score_distribution_svg(rows),
        "latency_plot": latency_svg(rows),
        "worst": [_worst_view(row) for row in worst_questions(rows, worst)],
    }
    return render_to_string("knowledge/evaluation_report.html", context)


def _aggregate_rows(aggregates: dict[str, Any], judges: dict[str, str]) -> list[dict[str, Any]]:
    judged_by = {
        "faithfulness": judges.get("faithfulness", ""),
        "citations": judges.get("citation_recall", ""),
        "retrieval": judges.get("retrieval", ""),
    }
    rows = []
    for section in ("retrieval", "faithfulness", "citations", "correctness"):
        for metric, value in (aggregates.get(section) or {}).items():
            source = judged_by.get(section) or judges.get(metric, "")
            rows.append({"section": section, "metric": metric, "source": source, **value})
    return rows


def _latency_rows(latency: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    labels = dict(LATENCY_STAGES)
    return [{"stage": labels.get(stage, stage), **values} for stage, values in latency.items()]


def _worst_view(row: dict[str, Any]) -> dict[str, Any]:
    cited = {c["n"] for c in row.get("citations_given") or []}
    passages = [p for p in row.get("passages") or [] if p["n"] in cited]
    return {
        **row,
        "cited_passages": passages,
        "claims": (row.get("faithfulness") or {}).get("claims", []),
        "sentences": (row.get("citations") or {}).get("sentences", []),
    }


# --- Plots --------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "svg.fonttype": "none", "axes.spines.top": False})
    plt.rcParams.update({"axes.spines.right": False})
    return plt


def _svg(figure) -> SafeString:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    _pyplot().close(figure)
    text = buffer.getvalue()
    # Only the <svg> element: the XML prologue and DOCTYPE are not valid inside HTML.
    return mark_safe(text[text.find("<svg") :])  # noqa: S308 - matplotlib's own output


def score_distribution_svg(rows: list[dict[str, Any]]) -> SafeString | None:
    """Histograms (0..1, ten bins) of each per-question score the report holds."""
    series = [
        (title, values)
        for section, metric, title in SCORE_PLOTS
        if (values := _values(rows, section, metric))
    ]
    if not series:
        return None
    plt = _pyplot()
    columns = min(3, len(series))
    lines = (len(series) + columns - 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(3.2 * columns, 2.3 * lines), squeeze=False)
    for axis in axes.flat[len(series) :]:
        axis.set_visible(False)
    for axis, (title, values) in zip(axes.flat, series, strict=False):
        axis.hist(values, bins=10, range=(0, 1), color="#3b6ea8", edgecolor="white")
        axis.set_title(f"{title} (n={len(values)}, mean {sum(values) / len(values):.2f})")
        axis.set_xlim(0, 1)
        axis.set_ylabel("questions")
    figure.tight_layout()
    return _svg(figure)


def latency_svg(rows: list[dict[str, Any]]) -> SafeString | None:
    """Box plots of the per-question latency of each stage, in milliseconds."""
    stages = [
        (label, values)
        for stage, label in LATENCY_STAGES
        if (values := _values(rows, "latency_ms", stage))
    ]
    if not stages:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 0.45 * len(stages) + 1))
    axis.boxplot(
        [v for _, v in stages], orientation="horizontal", tick_labels=[s for s, _ in stages]
    )
    axis.invert_yaxis()
    axis.set_xlabel("milliseconds per question")
    axis.set_title("Latency per stage")
    figure.tight_layout()
    return _svg(figure)


def _values(rows: list[dict[str, Any]], section: str, metric: str) -> list[float]:
    values = [(row.get(section) or {}).get(metric) for row in rows if "error" not in row]
    return [float(v) for v in values if isinstance(v, int | float)]
