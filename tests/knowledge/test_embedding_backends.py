"""RAG_EMBEDDING_BACKEND picks what runs the embedding model, and the index records it."""

from __future__ import annotations

import pytest

from knowledge import components, ingestion
from knowledge.models import KnowledgeBase
from retrieval.embedders import OnnxEmbedder
from tests.factories import add_text, make_knowledge_base
from tests.retrieval.test_embedders import build_sentence_model

pytestmark = pytest.mark.django_db

TEXT = "# Travel\n\nEmployees book flights through the travel desk two weeks ahead.\n"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_sentence_model(tmp_path_factory.mktemp("tiny-sentence-model"))


@pytest.fixture
def onnx_settings(settings, tiny_model):
    settings.RAG_EMBEDDING_MODEL = str(tiny_model)
    settings.RAG_EMBEDDING_BACKEND = "onnx"
    return settings


def test_the_onnx_backend_exports_into_the_data_folder(onnx_settings):
    components._load_embedder.cache_clear()  # as in a fresh worker: the export happens here
    embedder = components.get_embedder()
    assert isinstance(embedder, OnnxEmbedder)
    assert embedder.model_path.is_relative_to(onnx_settings.RAG_DATA_DIR / "models")


def test_a_knowledge_base_records_the_backend_of_its_vectors(onnx_settings):
    knowledge_base = make_knowledge_base()
    ingestion.ingest_document(add_text(knowledge_base, "travel.md", TEXT).pk)
    stored = KnowledgeBase.objects.get(pk=knowledge_base.pk).embedding_model
    assert stored == f"{onnx_settings.RAG_EMBEDDING_MODEL} (onnx)"
