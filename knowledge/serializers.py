"""Request and response shapes of the REST API (/api/v1/) and the OpenAI-compatible API (/v1/)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from generation.citations import Citation

from .answering import AnswerEvent, Delta, Sources
from .forms import MAX_ID
from .models import Document, KnowledgeBase

MAX_QUERY_CHARS = 4000
MAX_TOP_K = 50
# The OpenAI endpoint's conversation, sent whole with each request: messages and characters.
MAX_CHAT_MESSAGES = 100
MAX_CHAT_CHARS = 100_000


class ErrorSerializer(serializers.Serializer):
    """Every error of /api/v1/: one readable sentence and a stable code to branch on."""

    detail = serializers.CharField()
    code = serializers.CharField()
    # DRF pops declared fields off the class, so Serializer.errors stays the property.
    errors = serializers.DictField(  # type: ignore[assignment]
        required=False, help_text="Field-by-field messages, for invalid requests only."
    )


# --- Knowledge bases and documents ------------------------------------------------------------


class KnowledgeBaseSerializer(serializers.ModelSerializer):
    document_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = KnowledgeBase
        fields = ["id", "name", "description", "document_count", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class DocumentSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(source="state", choices=Document.State.choices)
    file_url = serializers.SerializerMethodField()

    class Meta:
        model = Document
        fields = [
            "id",
            "knowledge_base",
            "title",
            "original_name",
            "file_type",
            "size",
            "sha256",
            "status",
            "progress",
            "error",
            "warnings",
            "page_count",
            "chunk_count",
            "file_url",
            "created_at",
            "indexed_at",
        ]
        read_only_fields = fields

    def get_file_url(self, document: Document) -> str:
        return reverse("api:document-file", args=[document.pk])


class DocumentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True,  # an empty file gets our own, clearer message
        help_text=(
            "PDF (scanned pages are read with OCR), Word (.docx), PowerPoint (.pptx), Excel "
            "(.xlsx), CSV, e-mail (.eml), PNG, JPEG or TIFF images, HTML, Markdown or plain text."
        ),
    )
    password = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        write_only=True,
        help_text="Password of an encrypted PDF; kept only until ingestion succeeds.",
    )


# --- Search and answers ------------------------------------------------------------------------


class TextField(serializers.CharField):
    """A string, and only a string: DRF's CharField would turn 42 or true into "42" or "True"."""

    default_error_messages = {"invalid": _("Must be a string.")}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class KnowledgeBaseIdsField(serializers.ListField):
    """Knowledge base ids; left out, every readable one. An empty list is refused rather than
    read as "all", since it more likely means that a client's selection came out empty."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("child", serializers.IntegerField(min_value=1, max_value=MAX_ID))
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_empty", False)
        kwargs.setdefault("max_length", 100)
        kwargs.setdefault(
            "help_text",
            "Knowledge base ids; left out: every knowledge base the caller may read. "
            "An empty list is refused (400).",
        )
        super().__init__(**kwargs)
        self.error_messages["empty"] = _(
            "Name at least one knowledge base id, or leave the field out to use every "
            "knowledge base you may read."
        )


class SearchSerializer(serializers.Serializer):
    query = TextField(max_length=MAX_QUERY_CHARS)
    knowledge_bases = KnowledgeBaseIdsField()
    top_k = serializers.IntegerField(min_value=1, max_value=MAX_TOP_K, default=10)


class PassageSerializer(serializers.Serializer):
    """A search result (search.SearchResult): a passage at its rank."""

    rank = serializers.IntegerField()
    score = serializers.FloatField(source="passage.score")
    chunk_id = serializers.IntegerField(source="passage.chunk_id")
    document_id = serializers.IntegerField(source="passage.document_id")
    document_title = serializers.CharField(source="passage.document_title")
    knowledge_base_id = serializers.IntegerField(
        source="passage.knowledge_base_id", allow_null=True
    )
    page = serializers.IntegerField(source="passage.page", allow_null=True)
    heading_path = serializers.ListField(
        child=serializers.CharField(), source="passage.heading_path"
    )
    text = serializers.CharField(source="passage.text")


class SearchResponseSerializer(serializers.Serializer):
    query = serializers.CharField()
    results = PassageSerializer(many=True)


class AskSerializer(serializers.Serializer):
    question = TextField(max_length=MAX_QUERY_CHARS)
    knowledge_bases = KnowledgeBaseIdsField()
    stream = serializers.BooleanField(
        default=False, help_text="true: answer as server-sent events (sources, delta, done)."
    )
    conversation = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_ID,
        help_text="Continue this conversation of yours; the answer uses its earlier turns.",
    )
    top_k = serializers.IntegerField(required=False, min_value=1, max_value=MAX_TOP_K)


class CitationSerializer(serializers.Serializer):
    n = serializers.IntegerField()
    document_id = serializers.IntegerField()
    document_title = serializers.CharField()
    page = serializers.IntegerField(allow_null=True)
    chunk_id = serializers.IntegerField()
    text = serializers.CharField()


class NumberedPassageSerializer(serializers.Serializer):
    """A passage as given to the generator, numbered [n]."""

    n = serializers.IntegerField()
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    document_title = serializers.CharField()
    page = serializers.IntegerField(allow_null=True)
    text = serializers.CharField()


class TimingsSerializer(serializers.Serializer):
    """Milliseconds from the start of the request."""

    retrieval_ms = serializers.IntegerField(allow_null=True)
    first_token_ms = serializers.IntegerField(allow_null=True)
    generation_ms = serializers.IntegerField(allow_null=True)
    total_ms = serializers.IntegerField(allow_null=True)


class UsageSerializer(serializers.Serializer):
    """Token counts: the model server's, or in extractive mode counted with the embedding
    model's tokenizer (the prompt: question, earlier turns and passages; the completion: the
    answer)."""

    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class AskResponseSerializer(serializers.Serializer):
    """An answering.Answer."""

    answer = serializers.CharField(source="text")
    citations = CitationSerializer(many=True)
    conversation = serializers.IntegerField()
    message = serializers.IntegerField()
    mode = serializers.ChoiceField(choices=["llm", "extractive"])
    invalid_citations = serializers.ListField(child=serializers.IntegerField())
    uncited_sentences = serializers.ListField(child=serializers.CharField())
    notice = serializers.CharField(allow_null=True)
    standalone_question = serializers.CharField(
        help_text="The question as retrieval saw it, with the conversation folded in."
    )
    timings = TimingsSerializer()
    passages = NumberedPassageSerializer(many=True)
    usage = UsageSerializer(
        allow_null=True, help_text="The model server's token counts; null for extractive answers."
    )


class ServerSentEventSerializer(serializers.Serializer):
    """One event of a text/event-stream response, whose body is a stream of them."""

    event = serializers.CharField(
        required=False, help_text="The event's name (none in the OpenAI-compatible stream)."
    )
    # DRF pops declared fields off the class, so Serializer.data stays the property.
    data = serializers.CharField(  # type: ignore[assignment]
        help_text="JSON on one line; the OpenAI-compatible stream ends with [DONE]."
    )


def answer_event_body(event: AnswerEvent) -> dict[str, Any]:
    """The JSON of one event of a streamed answer (answering.stream_answer)."""
    if isinstance(event, Sources):
        return {"passages": NumberedPassageSerializer(event.passages, many=True).data}
    if isinstance(event, Delta):
        return {"text": event.text}
    return AskResponseSerializer(event.answer).data


def citations_body(citations: Iterable[Citation]) -> list[dict[str, Any]]:
    return list(CitationSerializer(citations, many=True).data)


# --- OpenAI-compatible chat completions ---------------------------------------------------------


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "developer", "user", "assistant", "tool"])
    content = serializers.JSONField(
        help_text="A string, or a list of content parts of which the text parts are read."
    )


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(
        default=False,
        help_text="true: a last chunk before [DONE] carries the token counts in usage.",
    )


class ChatSerializer(serializers.Serializer):
    model = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text='"knowledge" (every knowledge base you may read; the default), '
        '"kb:NAME" or a knowledge base name (that one only).',
    )
    # What ChatMessageSerializer(many=True, ...) builds; the stubs lack its max_length.
    messages: serializers.ListSerializer[Any] = serializers.ListSerializer(
        child=ChatMessageSerializer(), allow_empty=False, max_length=MAX_CHAT_MESSAGES
    )
    stream = serializers.BooleanField(default=False)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    # Accepted for compatibility; the answer's length and style follow the server's settings.
    temperature = serializers.FloatField(required=False, allow_null=True)
    max_tokens = serializers.IntegerField(required=False, allow_null=True)
    user = serializers.CharField(required=False, allow_blank=True)


class ChatChoiceMessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()
    citations = CitationSerializer(many=True)


class ChatChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = ChatChoiceMessageSerializer()
    finish_reason = serializers.CharField()


class ChatCompletionSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = ChatChoiceSerializer(many=True)
    usage = UsageSerializer()


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


class ModelListSerializer(serializers.Serializer):
    object = serializers.CharField()
    # DRF pops declared fields off the class, so Serializer.data stays the property.
    data = ModelSerializer(many=True)  # type: ignore[assignment]
