"""The chat pages: conversations, the answer stream, feedback and deleting a conversation."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from . import access, answering, conversations
from . import serializers as s
from .errors import KnowledgeBaseNotFoundError
from .forms import AskForm, FeedbackForm
from .markdown import render_markdown, render_passage
from .models import Conversation, Document, Message
from .pages import AuthenticatedHttpRequest, page, page_error
from .sse import event_stream, sse_event

logger = logging.getLogger(__name__)


HIDDEN_ANSWER = gettext_lazy("This answer is hidden: it quotes sources you can no longer read.")


@page
def chat(request: AuthenticatedHttpRequest, pk: int | None = None) -> HttpResponse:
    """The chat page: a new conversation, or one of the user's own (404 for any other)."""
    conversation = None
    if pk is not None:
        conversation = get_object_or_404(conversations.owned_by(request.user), pk=pk)
    knowledge_bases = access.readable_knowledge_bases(request.user)
    readable_ids = {kb.pk for kb in knowledge_bases}
    if conversation:
        selected = set(conversation.knowledge_bases.values_list("pk", flat=True)) & readable_ids
    elif request.GET.get("kb", "").isdigit():
        selected = {int(request.GET["kb"])} & readable_ids
    else:
        selected = readable_ids
    return render(
        request,
        "knowledge/chat.html",
        {
            "conversation": conversation,
            "conversations": conversations.chat_conversations(request.user),
            "knowledge_bases": knowledge_bases,
            "selected": selected,
            "turns": conversation_turns(conversation, request.user) if conversation else [],
        },
    )


def conversation_turns(conversation: Conversation, user) -> list[dict]:
    """The conversation's messages as the page shows them, answers rendered as safe HTML."""
    turns = []
    feedback = {item.message_id: item for item in conversations.feedback_on(conversation, user)}
    hidden = access.answers_hidden_from(user, conversation)
    for message in conversation.messages.all():
        turn: dict[str, Any] = {"message": message, "feedback": feedback.get(message.pk)}
        if message.pk in hidden:
            turn["citations"] = []
            turn["html"] = format_html('<p class="muted">{}</p>', HIDDEN_ANSWER)
        elif message.role == Message.Role.ASSISTANT:
            citations = citations_with_urls(message.citations or [], user)
            turn["citations"] = citations
            turn["html"] = render_markdown(message.text, answer_links(citations))
        turns.append(turn)
    return turns


def answer_links(citations: Iterable[dict]) -> dict[int, str]:
    return {citation["n"]: citation["url"] for citation in citations if citation.get("url")}


def citations_with_urls(citations: list[dict], user) -> list[dict]:
    """Add to each citation (or passage) the link to its source: the PDF at its page, or the
    passage page. Sources the user can no longer read are dropped."""
    ids = {int(citation["document_id"]) for citation in citations if citation.get("document_id")}
    types = dict(
        Document.objects.readable_by(user).filter(pk__in=ids).values_list("pk", "file_type")
    )
    shown = []
    for citation in citations:
        if citation.get("document_id") not in types:
            continue
        document_url = reverse("knowledge:document_file", args=[citation["document_id"]])
        page_number = citation.get("page")
        if types[citation["document_id"]] == "pdf" and page_number:
            url = f"{document_url}#page={page_number}"
        else:
            url = reverse("knowledge:passage", args=[citation["chunk_id"]])
        shown.append({**citation, "url": url, "html": render_passage(citation.get("text") or "")})
    return shown


@require_POST
@login_required
def answer_stream(request: AuthenticatedHttpRequest) -> HttpResponse | StreamingHttpResponse:
    """Answer a question as server-sent events: sources, deltas, then done (or error)."""
    form = AskForm(request.POST)
    if not form.is_valid():
        return form_error(form)
    data = form.cleaned_data
    try:
        knowledge_bases = access.readable_knowledge_bases(request.user, data["knowledge_bases"])
    except KnowledgeBaseNotFoundError:
        return page_error(access.NO_SUCH_KNOWLEDGE_BASE, 404)
    conversation = None
    if data["conversation"]:
        try:
            conversation = conversations.own_conversation(request.user, data["conversation"])
        except conversations.ConversationNotFoundError:
            return page_error(_("No such conversation."), 404)
        if data["regenerate"]:
            conversations.forget_last_turn(conversation)
    events = answering.stream_answer(
        data["question"], knowledge_bases, user=request.user, conversation=conversation
    )
    return event_stream(chat_events(events, request.user))


def chat_events(events: Iterable[answering.AnswerEvent], user) -> Iterator[str]:
    """Server-sent events from answering.stream_answer events (the REST API's, see
    serializers.answer_event_body), with links to the sources and the finished answer
    rendered as safe HTML."""
    try:
        for event in events:
            data = s.answer_event_body(event)
            if isinstance(event, answering.Sources):
                data["passages"] = citations_with_urls(data["passages"], user)
            elif isinstance(event, answering.Done):
                data = finished_answer(data, user)
            yield sse_event(event.kind, data)
    except Exception:
        # The response has started, so the error goes to the page as an event.
        logger.exception("The answer stream failed")
        message = _("The answer could not be completed. Try again in a moment.")
        yield sse_event("error", {"message": message})


def finished_answer(data: dict, user) -> dict:
    citations = citations_with_urls(data["citations"], user)
    return {
        **data,
        "citations": citations,
        "passages": citations_with_urls(data["passages"], user),
        "html": render_markdown(data["answer"], answer_links(citations)),
    }


@require_POST
@login_required
def feedback(request: AuthenticatedHttpRequest, pk: int) -> JsonResponse:
    """Thumbs up or down, with an optional comment, on one of the user's own answers."""
    try:
        message = conversations.own_answer(request.user, pk)
    except conversations.ConversationNotFoundError:
        return page_error(_("No such answer."), 404)
    form = FeedbackForm(request.POST)
    if not form.is_valid():
        return form_error(form)
    conversations.record_feedback(
        message, request.user, form.cleaned_data["rating"], form.cleaned_data["comment"]
    )
    return JsonResponse({"rating": form.cleaned_data["rating"], "saved": True})


@require_POST
@login_required
def conversation_delete(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    conversation = get_object_or_404(conversations.owned_by(request.user), pk=pk)
    conversation.delete()
    messages.success(request, _("The conversation is deleted."))
    return redirect("knowledge:chat")


def form_error(form: forms.Form) -> JsonResponse:
    """A script request's invalid form: every message, in one sentence after another."""
    errors = [str(error) for field in form.errors.values() for error in field]
    return page_error(" ".join(errors), 400)
