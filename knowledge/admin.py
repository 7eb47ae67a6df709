"""Admin registrations: knowledge bases with members, documents with ingestion actions,
conversations with their feedback (read-only).

A staff member sees and chooses only what belongs to the knowledge bases it manages
(KnowledgeBase.objects.manageable_by), as on the pages and in the API; superusers see all.
"""

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.urls import reverse
from django.utils.html import format_html

from . import documents, uploads
from .forms import upload_problem
from .models import Chunk, Conversation, Document, Feedback, KnowledgeBase, Message
from .security import AdminLoginForm

admin.site.login_form = AdminLoginForm  # says when a sign-in is locked out


def managed(request) -> QuerySet[KnowledgeBase]:
    return KnowledgeBase.objects.manageable_by(request.user)


class ScopedAdmin(admin.ModelAdmin):
    """Only rows whose scope (a lookup) is in allowed(): by default, rows of the knowledge
    bases the user manages; knowledge base choices are limited to those too."""

    scope = "knowledge_base"

    def allowed(self, request) -> QuerySet:
        return managed(request)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.scope}__in": self.allowed(request)})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is KnowledgeBase and not request.user.is_superuser:
            kwargs["queryset"] = managed(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


def managed_conversations(request) -> QuerySet[Conversation]:
    """Conversations over knowledge bases all managed by the user: an answer may quote any
    base its conversation searched."""
    outside = KnowledgeBase.objects.exclude(pk__in=managed(request).values("pk"))
    return Conversation.objects.filter(knowledge_bases__in=managed(request)).exclude(
        knowledge_bases__in=outside
    )


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(ScopedAdmin):
    list_display = (
        "name",
        "document_count",
        "member_count",
        "index_version",
        "lora_adapter",
        "updated_at",
    )
    search_fields = ("name", "description")
    filter_horizontal = ("members", "member_groups")
    readonly_fields = ("index_version", "embedding_model", "created_at", "updated_at")
    scope = "pk"

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if not change and not request.user.is_superuser:
            form.instance.members.add(request.user)  # its creator manages it

    @admin.display(description="documents")
    def document_count(self, obj: KnowledgeBase) -> int:
        return obj.documents.count()

    @admin.display(description="members (users + groups)")
    def member_count(self, obj: KnowledgeBase) -> str:
        return f"{obj.members.count()} + {obj.member_groups.count()}"


class DocumentUploadForm(forms.ModelForm):
    """Adding a document in the admin uploads a file, as the upload page does."""

    file = forms.FileField(allow_empty_file=True)  # the upload rule says why, as elsewhere
    password = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Only for password-protected PDFs."
    )

    class Meta:
        model = Document
        fields = ("knowledge_base", "file")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if problem := upload_problem(upload):
            raise forms.ValidationError(problem)
        return upload


@admin.register(Document)
class DocumentAdmin(ScopedAdmin):
    list_display = (
        "__str__",
        "knowledge_base",
        "state",
        "progress",
        "page_count",
        "chunk_count",
        "updated_at",
    )
    list_filter = ("state", ("knowledge_base", admin.RelatedOnlyFieldListFilter), "file_type")
    search_fields = ("title", "original_name", "sha256")
    # A document stays in its knowledge base (its chunks and indexes are that base's); to move
    # one, upload it to the other base and delete it here.
    readonly_fields = (
        "knowledge_base",
        "replaces",
        "uploaded_by",
        "sha256",
        "size",
        "file_type",
        "state",
        "progress",
        "error",
        "warnings",
        "page_count",
        "chunk_count",
        "embedding_model",
        "attempts",
        "lease_expires_at",
        "created_at",
        "updated_at",
        "indexed_at",
        "open_file",
    )
    # The stored file never changes (its hash names it): replace a document by uploading anew.
    exclude = ("password", "file")
    actions = ("reindex", "disable", "enable", "delete_with_index")

    @admin.display(description="file")
    def open_file(self, obj: Document) -> str:
        url = reverse("knowledge:document_file", args=[obj.pk])
        return format_html('<a href="{}">{}</a> ({} bytes)', url, obj.original_name, obj.size)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = DocumentUploadForm
            kwargs["fields"] = ("knowledge_base", "file", "password")
            kwargs["exclude"] = ()
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ("knowledge_base", "file", "password")})]
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        # The form has applied the upload rule, so the service stores this one.
        upload = form.cleaned_data["file"]
        stored = uploads.store_and_queue(
            form.cleaned_data["knowledge_base"],
            upload.name,
            upload,
            user=request.user,
            password=form.cleaned_data.get("password", ""),
        )
        if not stored.created:
            messages.warning(request, f"The same file is already there as {stored.document}.")
        obj.pk = stored.document.pk
        obj.refresh_from_db()

    @admin.action(description="Re-index selected documents")
    def reindex(self, request, queryset):
        for document in queryset:
            documents.queue_reindex(document)
        messages.success(request, f"Queued {queryset.count()} document(s) for re-indexing.")

    @admin.action(description="Disable selected documents")
    def disable(self, request, queryset):
        changed = documents.set_documents_enabled(queryset, False)
        messages.success(request, f"Disabled {len(changed)} document(s).")

    @admin.action(description="Enable selected documents")
    def enable(self, request, queryset):
        changed = documents.set_documents_enabled(queryset, True)
        messages.success(request, f"Enabled {len(changed)} document(s).")

    @admin.action(description="Delete selected documents and remove them from the indexes")
    def delete_with_index(self, request, queryset):
        count = documents.delete_documents(queryset)
        messages.success(request, f"Deleted {count} document(s) and removed them from the indexes.")

    def delete_model(self, request, obj):
        documents.delete_document(obj)

    def delete_queryset(self, request, queryset):
        """Django's "Delete selected" action: files too, and one publish per knowledge base."""
        documents.delete_documents(queryset)


@admin.register(Chunk)
class ChunkAdmin(ScopedAdmin):
    list_display = ("__str__", "page", "token_count")
    list_filter = (("knowledge_base", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("text",)
    exclude = ("embedding",)
    readonly_fields = (
        "document",
        "knowledge_base",
        "order",
        "text",
        "page",
        "heading_path",
        "token_count",
    )

    def has_add_permission(self, request):
        return False


class ReadOnlyAdmin(ScopedAdmin):
    """Conversations and feedback are records of what users asked and said: view only."""

    scope = "conversation"

    def allowed(self, request) -> QuerySet:
        return managed_conversations(request)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("role", "text", "mode", "citation_count", "timings", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="citations")
    def citation_count(self, obj: Message) -> int:
        return len(obj.citations or [])


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "user", "message_count", "feedback_summary", "updated_at")
    list_filter = (("knowledge_bases", admin.RelatedOnlyFieldListFilter),)
    scope = "pk"
    search_fields = ("title", "user__username", "messages__text")
    readonly_fields = ("user", "title", "knowledge_bases", "created_at", "updated_at")
    inlines = (MessageInline,)

    @admin.display(description="messages")
    def message_count(self, obj: Conversation) -> int:
        return obj.messages.count()

    @admin.display(description="feedback (up / down)")
    def feedback_summary(self, obj: Conversation) -> str:
        ratings = list(
            Feedback.objects.filter(message__conversation=obj).values_list("rating", flat=True)
        )
        return f"{ratings.count(1)} / {ratings.count(-1)}"


class FeedbackInline(admin.TabularInline):
    model = Feedback
    fields = ("user", "rating", "comment", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "conversation", "role", "mode", "created_at")
    list_filter = ("role", "mode")
    search_fields = ("text",)
    readonly_fields = (
        "conversation",
        "role",
        "text",
        "mode",
        "notice",
        "standalone_question",
        "citations",
        "timings",
        "created_at",
    )
    inlines = (FeedbackInline,)


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    scope = "message__conversation"

    list_display = ("message", "user", "rating", "comment", "created_at")
    list_filter = ("rating",)
    search_fields = ("comment", "message__text", "user__username")
    readonly_fields = ("message", "user", "rating", "comment", "created_at")
