"""Admin registrations: knowledge bases with members, documents with ingestion actions."""

from django.contrib import admin, messages

from . import services
from .models import Chunk, Document, KnowledgeBase


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(admin.ModelAdmin):
    list_display = ("name", "document_count", "index_version", "lora_adapter", "updated_at")
    search_fields = ("name", "description")
    filter_horizontal = ("members", "member_groups")
    readonly_fields = ("index_version", "embedding_model", "created_at", "updated_at")

    @admin.display(description="documents")
    def document_count(self, obj: KnowledgeBase) -> int:
        return obj.documents.count()


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "knowledge_base",
        "state",
        "progress",
        "page_count",
        "chunk_count",
        "updated_at",
    )
    list_filter = ("state", "knowledge_base", "file_type")
    search_fields = ("title", "original_name", "sha256")
    readonly_fields = (
        "sha256",
        "size",
        "file_type",
        "state",
        "progress",
        "error",
        "warnings",
        "page_count",
        "chunk_count",
        "attempts",
        "lease_expires_at",
        "created_at",
        "updated_at",
        "indexed_at",
    )
    exclude = ("password",)
    actions = ("reindex", "disable", "enable", "delete_with_index")

    @admin.action(description="Re-index selected documents")
    def reindex(self, request, queryset):
        for document in queryset:
            services.reindex_document(document)
        messages.success(request, f"Queued {queryset.count()} document(s) for re-indexing.")

    @admin.action(description="Disable selected documents")
    def disable(self, request, queryset):
        for document in queryset:
            services.set_document_enabled(document, False)

    @admin.action(description="Enable selected documents")
    def enable(self, request, queryset):
        for document in queryset:
            services.set_document_enabled(document, True)

    @admin.action(description="Delete selected documents and remove them from the indexes")
    def delete_with_index(self, request, queryset):
        for document in queryset:
            services.delete_document(document)

    def delete_model(self, request, obj):
        services.delete_document(obj)


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = ("__str__", "page", "token_count")
    list_filter = ("knowledge_base",)
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
