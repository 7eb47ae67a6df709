"""Conversations: starting one, continuing one of one's own, its turns, forgetting the last
turn, and feedback on its answers (and the answers rated well, for LoRA examples). Every check of
who owns a conversation is made here; the chat pages, the REST and OpenAI-compatible APIs and
answering call it.

A conversation with a user belongs to that user alone: another user finds no such conversation
(ConversationNotFoundError), the same answer as for a missing one. A conversation without a user
(asked from the command line) may be continued by anyone who may ask.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet
from django.utils import timezone

from .access import answers_hidden_from
from .models import Conversation, Feedback, KnowledgeBase, Message

# Earlier messages read back to condense a follow-up and to give the LLM the conversation.
HISTORY_MESSAGES = 12
# Conversations listed beside the chat.
LISTED = 50


class ConversationNotFoundError(Exception):
    """The conversation (or message) does not exist or belongs to another user."""

    def __init__(self) -> None:
        super().__init__("No such conversation.")


def owned_by(user) -> QuerySet[Conversation]:
    """The signed-in user's conversations."""
    return Conversation.objects.filter(user=user)


def chat_conversations(user) -> QuerySet[Conversation]:
    """The user's conversations of the chat page (API clients make one on every call), newest
    first."""
    return owned_by(user).filter(source=Conversation.Source.CHAT)[:LISTED]


def own_conversation(user, pk: int) -> Conversation:
    """The user's conversation pk; raises ConversationNotFoundError for any other."""
    conversation = owned_by(user).filter(pk=pk).first()
    if conversation is None:
        raise ConversationNotFoundError()
    return conversation


def title_for(text: str) -> str:
    return " ".join(text.split())[:200]


def start_conversation(
    user,
    title: str,
    *,
    source: str = Conversation.Source.CHAT,
    history: Iterable[tuple[str, str]] = (),
) -> Conversation:
    """A new conversation (of nobody for an anonymous or missing user), holding the earlier
    turns (role, text) that a client sent along, if any."""
    owner = user if user is not None and user.is_authenticated else None
    conversation = Conversation.objects.create(user=owner, title=title_for(title), source=source)
    Message.objects.bulk_create(
        Message(conversation=conversation, role=role, text=text) for role, text in history
    )
    return conversation


def check_owner(conversation: Conversation, user) -> None:
    """Raises ConversationNotFoundError unless the user may continue the conversation."""
    if conversation.user_id and (user is None or conversation.user_id != user.pk):
        raise ConversationNotFoundError()


def conversation_for(
    user, question: str, knowledge_bases: list[KnowledgeBase], conversation: Conversation | None
) -> Conversation:
    """The conversation a question goes on: the given one, checked to be the user's, or a new
    one; it remembers the knowledge bases asked."""
    if conversation is None:
        conversation = start_conversation(user, question)
    else:
        check_owner(conversation, user)
    conversation.knowledge_bases.add(*knowledge_bases)
    return conversation


def recent_turns(conversation: Conversation, user=None) -> list[tuple[str, str]]:
    """The recent turns (role, text), less answers quoting sources the user can no longer
    read."""
    recent = conversation.messages.order_by("-created_at", "-id")[:HISTORY_MESSAGES]
    hidden = answers_hidden_from(user, conversation) if user is not None else set()
    return [(m.role, m.text) for m in reversed(list(recent)) if m.pk not in hidden]


def add_question(conversation: Conversation, text: str) -> Message:
    return Message.objects.create(conversation=conversation, role=Message.Role.USER, text=text)


def add_answer(conversation: Conversation, text: str, **fields) -> Message:
    """Store an answer (citations, mode, timings...) and move the conversation to the top."""
    message = Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, text=text, **fields
    )
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    return message


def forget_last_turn(conversation: Conversation) -> None:
    """Before a regenerated answer: drop the last question and its answer, which the new
    answer asks and answers again."""
    last_question = conversation.messages.filter(role=Message.Role.USER).order_by("-pk").first()
    if last_question:
        conversation.messages.filter(pk__gte=last_question.pk).delete()


def own_answer(user, pk: int) -> Message:
    """The answer pk in one of the user's conversations; raises ConversationNotFoundError for
    any other message."""
    message = Message.objects.filter(
        pk=pk, conversation__in=owned_by(user), role=Message.Role.ASSISTANT
    ).first()
    if message is None:
        raise ConversationNotFoundError()
    return message


def feedback_on(conversation: Conversation, user) -> QuerySet[Feedback]:
    """The user's ratings of the conversation's answers."""
    return Feedback.objects.filter(message__conversation=conversation, user=user)


def record_feedback(message: Message, user, rating: int, comment: str = "") -> Feedback:
    """Store (or replace) the user's rating of an answer: +1 helpful, -1 not helpful.

    Raises ValueError for another rating or a message that is not an answer, and
    ConversationNotFoundError for a message of another user's conversation.
    """
    if rating not in (Feedback.Rating.UP, Feedback.Rating.DOWN):
        raise ValueError("A rating is +1 (helpful) or -1 (not helpful).")
    if message.role != Message.Role.ASSISTANT:
        raise ValueError("Only answers can be rated.")
    check_owner(message.conversation, user)
    feedback, _ = Feedback.objects.update_or_create(
        message=message,
        user=user if user is not None and user.is_authenticated else None,
        defaults={"rating": rating, "comment": comment.strip()},
    )
    return feedback


def answers_rated_well(knowledge_base: KnowledgeBase) -> Iterable[Message]:
    """Answers in the knowledge base's conversations with a +1 and no -1, newest first."""
    return (
        Message.objects.filter(
            role=Message.Role.ASSISTANT,
            conversation__knowledge_bases=knowledge_base,
            feedback__rating=Feedback.Rating.UP,
        )
        .exclude(feedback__rating=Feedback.Rating.DOWN)
        .distinct()
        .order_by("-created_at", "-pk")
    )


def question_before(message: Message) -> str:
    """The user's question that the answer replied to."""
    question = (
        Message.objects.filter(
            conversation=message.conversation_id, role=Message.Role.USER, pk__lt=message.pk
        )
        .order_by("-pk")
        .values_list("text", flat=True)
        .first()
    )
    return question or ""
