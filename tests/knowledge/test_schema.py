"""The OpenAPI schema: it validates, documents the contract's endpoints, its docs page works
offline, and a schema-driven fuzz run (schemathesis) against a live server finds no 5xx and
no response that the schema does not describe."""

from __future__ import annotations

import re

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core.cache import cache
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, given, settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.factories import indexed_text, make_knowledge_base, make_user
from tests.knowledge.apiclient import HASHING_EMBEDDER, token_client

CONTRACT = {
    "/api/v1/knowledge-bases/": {"get", "post"},
    "/api/v1/knowledge-bases/{id}/documents/": {"get", "post"},
    "/api/v1/documents/{id}/": {"get", "delete"},
    "/api/v1/documents/{id}/file": {"get"},
    "/api/v1/search/": {"post"},
    "/api/v1/ask/": {"post"},
    "/v1/chat/completions": {"post"},
    "/v1/models": {"get"},
}


@pytest.fixture
def generated_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_the_schema_validates_against_the_openapi_specification(generated_schema):
    validate_schema(generated_schema)  # raises jsonschema.ValidationError


def test_the_schema_documents_exactly_the_contract(generated_schema):
    documented = {
        path: {method for method in operations if method != "parameters"}
        for path, operations in generated_schema["paths"].items()
    }
    assert documented == CONTRACT


def test_every_operation_documents_its_errors(generated_schema):
    for path, operations in generated_schema["paths"].items():
        for method, operation in operations.items():
            assert "401" in operation["responses"], f"{method} {path}"


@pytest.mark.django_db
def test_the_schema_is_served_to_a_token():
    client = token_client(make_user("reader"))
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Company knowledge API"


@pytest.mark.django_db
def test_the_docs_page_loads_swagger_ui_from_our_own_static_files():
    client = APIClient()
    client.force_login(make_user("reader"))
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
    assert assets, "the page names no script or style"
    for asset in assets:
        assert not asset.startswith(("http:", "https:", "//")), asset
        relative = asset.split("/static/", 1)[1]
        assert finders.find(relative), f"{asset} is not among the static files"


# --- Fuzzing -------------------------------------------------------------------------------------


@pytest.fixture
def fuzz_token(transactional_db, settings) -> str:
    settings.RAG_EMBEDDING_MODEL = HASHING_EMBEDDER
    settings.RAG_LLM_BASE_URL = ""
    settings.RAG_MAX_UPLOAD_MB = 1
    for name in ("ANON", "USER", "ASK"):
        setattr(settings, f"RAG_API_THROTTLE_{name}", "")
    cache.clear()
    owner = make_user("fuzzer", is_staff=True)
    knowledge_base = make_knowledge_base("handbook", members=[owner])
    make_knowledge_base("foreign")
    indexed_text(knowledge_base, "travel.md", "# Travel\n\nEmployees fly economy class.")
    client = token_client(owner)
    return client._credentials["HTTP_AUTHORIZATION"].split()[1]


ALL_CHECKS = list(HealthCheck)
OPERATIONS = [(path, method) for path, methods in CONTRACT.items() for method in sorted(methods)]
# GET /v1/models takes no input at all: there is nothing to make invalid.
WITHOUT_INPUT = {("/v1/models", "get")}
CASES = [
    (path, method, mode)
    for path, method in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or (path, method) not in WITHOUT_INPUT
]


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize(("path", "method", "mode"), CASES)
def test_fuzzing_finds_no_server_error_and_responses_match_the_schema(
    live_server, fuzz_token, path, method, mode
):
    headers = {"Authorization": f"Token {fuzz_token}"}
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema/", headers=headers)
    operation = schema[path][method.upper()]

    inputs = [p for p in operation.iter_parameters() if p.location in ("path", "query")]
    if mode.is_negative:  # WITHOUT_INPUT must list every operation with nothing to invalidate
        assert inputs or operation.get_request_payload_content_types()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=10, deadline=None, database=None, suppress_health_check=ALL_CHECKS)
    def call(case) -> None:
        response = case.call(base_url=live_server.url, headers=headers, timeout=30)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
        )
        # The body as the schema documents it for its status and content type.
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    call()
