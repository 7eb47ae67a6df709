"""Knowledge bases, their documents and chunks. The database is the source of truth: chunk text and
embeddings live here, and the FAISS and BM25 index files can always be rebuilt from it."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class KnowledgeBaseQuerySet(models.QuerySet["KnowledgeBase"]):
    def readable_by(self, user) -> KnowledgeBaseQuerySet:
        """Knowledge bases the user may read: as a member, through a group, or as superuser."""
        if not user or not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self.all()
        return self.filter(Q(members=user) | Q(member_groups__user=user)).distinct()

    def manageable_by(self, user) -> KnowledgeBaseQuerySet:
        """Knowledge bases whose documents the user may upload, replace, disable and delete:
        those it reads, when it is staff, and all of them for a superuser. Plain members only
        read (ask, search, open sources)."""
        if not user or not (user.is_staff or user.is_superuser):
            return self.none()
        return self.readable_by(user)


class DocumentQuerySet(models.QuerySet["Document"]):
    def readable_by(self, user) -> DocumentQuerySet:
        """Documents of the knowledge bases the user may read."""
        return self.filter(knowledge_base__in=KnowledgeBase.objects.readable_by(user).values("pk"))

    def manageable_by(self, user) -> DocumentQuerySet:
        """Documents of the knowledge bases the user may manage."""
        return self.filter(
            knowledge_base__in=KnowledgeBase.objects.manageable_by(user).values("pk")
        )

    def awaiting_publish(self) -> DocumentQuerySet:
        """New documents whose chunks are stored and wait for their batched index publish
        (ingestion.Publish.BATCHED): processing at AWAITING_PUBLISH_PROGRESS, with no lease,
        since no worker holds them; the publish marks them indexed."""
        return self.filter(
            state=Document.State.PROCESSING,
            progress=AWAITING_PUBLISH_PROGRESS,
            lease_expires_at__isnull=True,
        )


class KnowledgeBase(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="knowledge_bases"
    )
    member_groups = models.ManyToManyField(Group, blank=True, related_name="knowledge_bases")
    lora_adapter = models.CharField(
        max_length=200, blank=True, help_text="LoRA adapter name registered with vLLM, if any."
    )
    ocr_languages = models.CharField(
        max_length=100,
        blank=True,
        validators=[
            RegexValidator(r"^[a-z_]+(\+[a-z_]+)*$", "Tesseract language names joined with +.")
        ],
        help_text="Tesseract languages for scanned pages and images of this base, such as "
        "chi_tra+eng; empty: the server's RAG_OCR_LANGUAGES.",
    )
    index_version = models.PositiveIntegerField(
        default=0, help_text="Version of the published FAISS and BM25 indexes (0: none yet)."
    )
    embedding_model = models.CharField(max_length=500, blank=True)
    # When a batched publish of new documents was queued (dispatch.publish_soon); cleared as the
    # publish starts, so that each batch queues one.
    publish_queued_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = KnowledgeBaseQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    # Only the index publisher changes these, with a queryset update under the knowledge base's
    # lock; an instance loaded before a publish and saved later (a form, the admin) must not
    # roll them back.
    PUBLISHED_FIELDS = ("index_version", "embedding_model")

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name not in self.PUBLISHED_FIELDS
            ]
        super().save(*args, **kwargs)


class Document(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        PROCESSING = "processing", _("Processing")
        INDEXED = "indexed", _("Indexed")
        FAILED = "failed", _("Failed")
        DISABLED = "disabled", _("Disabled")

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="documents"
    )
    file = models.FileField(upload_to="documents/%Y/%m/", max_length=500)
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField(default=0)
    file_type = models.CharField(max_length=20, blank=True)
    title = models.CharField(max_length=500, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    warnings = models.TextField(blank=True)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    # The embedder (model and backend) that made this document's chunk vectors.
    embedding_model = models.CharField(max_length=500, blank=True)
    # Encrypted PDFs: kept only until ingestion succeeds, never shown.
    password = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    replaces = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replacements",
        help_text="The document this upload replaces once it is indexed.",
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    attached_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="attachments",
        help_text="The e-mail message this file was attached to (deleted with it).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    indexed_at = models.DateTimeField(null=True, blank=True)

    objects = DocumentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["knowledge_base", "sha256"], name="unique_content_per_knowledge_base"
            )
        ]
        indexes = [models.Index(fields=["knowledge_base", "state"])]

    def __str__(self) -> str:
        return self.title or self.original_name


# Documents whose chunks belong in the published indexes. A document being re-ingested keeps
# its old chunks searchable until the new ones replace them.
AWAITING_PUBLISH_PROGRESS = 99  # DocumentQuerySet.awaiting_publish
SEARCHABLE_STATES = (Document.State.INDEXED, Document.State.PROCESSING, Document.State.QUEUED)
# Joins the headings above a chunk in Chunk.heading_path.
HEADING_SEPARATOR = " › "


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    # Denormalised so that an index can be synchronised with one query per knowledge base.
    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="chunks"
    )
    order = models.PositiveIntegerField()
    text = models.TextField()
    page = models.PositiveIntegerField(null=True, blank=True)
    heading_path = models.CharField(max_length=1000, blank=True)
    token_count = models.PositiveIntegerField()
    embedding = models.BinaryField(help_text="float32 vector, L2-normalised")

    class Meta:
        ordering = ["document", "order"]
        constraints = [
            models.UniqueConstraint(fields=["document", "order"], name="unique_chunk_order")
        ]
        indexes = [models.Index(fields=["knowledge_base", "id"])]

    def __str__(self) -> str:
        return f"{self.document} #{self.order}"


class IndexChange(models.Model):
    """A document whose chunks changed since its knowledge base's last index publish, so that
    the publish reads only those documents' chunks instead of every chunk id of the base.
    removed_chunk_ids are the chunks the document held when the change was noted: the change
    may delete them from the database, and the published indexes must drop them."""

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="index_changes"
    )
    document_id = models.BigIntegerField()  # not a foreign key: the document may be gone
    removed_chunk_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"index change of document {self.document_id}"


class Conversation(models.Model):
    """A chat thread of one user over a set of knowledge bases."""

    class Source(models.TextChoices):
        CHAT = "chat", _("Chat page")
        API = "api", _("REST API")
        OPENAI = "openai", _("OpenAI-compatible API")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="conversations",
    )
    title = models.CharField(max_length=200, blank=True)
    knowledge_bases = models.ManyToManyField(
        KnowledgeBase, blank=True, related_name="conversations"
    )
    # Where it was asked: the chat page's sidebar lists only its own conversations, not the
    # ones API clients create on every call.
    source = models.CharField(
        max_length=10, choices=Source.choices, default=Source.CHAT, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class Message(models.Model):
    """One turn of a conversation; an assistant message keeps its checked citations."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Mode(models.TextChoices):
        LLM = "llm"
        EXTRACTIVE = "extractive"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    text = models.TextField()
    citations = models.JSONField(default=list, blank=True)
    mode = models.CharField(max_length=20, choices=Mode.choices, blank=True)
    standalone_question = models.TextField(
        blank=True, help_text="The question as retrieval saw it, with the conversation folded in."
    )
    timings = models.JSONField(default=dict, blank=True)
    notice = models.TextField(
        blank=True, help_text="Why the answer came another way, e.g. the language model was down."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"


class Feedback(models.Model):
    """A user's rating of an answer: +1 helpful, -1 not helpful, with an optional comment."""

    class Rating(models.IntegerChoices):
        UP = 1
        DOWN = -1

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="one_feedback_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.rating:+d} on message {self.message_id}"
