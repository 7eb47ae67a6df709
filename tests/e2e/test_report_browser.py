"""The evaluation report opened as a file in real Chromium: aggregates first, both plots drawn,
then the worst questions with the judge's reasons; a screenshot is kept as an artifact."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from knowledge import components, ingestion
from tests.conftest import SHARED_DATA
from tests.factories import add_file, make_knowledge_base

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

HANDBOOK = SHARED_DATA / "handbook" / "pagerduty-incident-response" / "docs" / "before"


@pytest.fixture
def report_html(settings, tmp_path):
    settings.RAG_EMBEDDING_MODEL = "hashing:256"  # a real, weightless embedder
    settings.RAG_LLM_BASE_URL = ""
    components.reset_llm_clients()
    knowledge_base = make_knowledge_base("incidents")
    for name in ("call_etiquette.md", "severity_levels.md"):
        ingestion.ingest_document(add_file(knowledge_base, HANDBOOK / name).pk)
    questions = [
        {"id": "mute", "question": "Should I keep my microphone muted on a call?",
         "reference_answer": "Keep your microphone muted until you have something to say."},
        {"id": "sev", "question": "What is a SEV-1 incident?",
         "reference_answer": "A critical issue that warrants public notification."},
    ]  # fmt: skip
    dataset = tmp_path / "dataset.jsonl"
    dataset.write_text("".join(json.dumps(q) + "\n" for q in questions))
    out = tmp_path / "report"
    call_command("evaluate", "--kb", "incidents", "--dataset", str(dataset), "--out", str(out))
    return out / "report.html"


def test_the_report_reads_offline_with_its_plots(report_html, browser_page, artifacts_dir):
    page = browser_page
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(report_html.as_uri())

    headings = page.locator("h2").all_inner_texts()
    assert headings[:2] == ["Aggregates", "Score distributions"]
    assert page.locator("#aggregates tbody tr").count() >= 5
    for plot in ("#score-plot svg", "#latency-plot svg"):
        box = page.locator(plot).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100
    assert page.locator("article").count() == 2
    assert "closest context sentence" in page.locator("article").first.inner_text()
    assert requests == [report_html.as_uri()]  # nothing fetched: the page is self-contained
    page.screenshot(path=str(artifacts_dir / "evaluation_report.png"), full_page=True)
