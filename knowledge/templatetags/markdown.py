"""{% load markdown %}: text written in Markdown (descriptions, passages of documents) shown as
sanitised HTML (knowledge.markdown), never as raw markup."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from knowledge.markdown import render_markdown, render_passage

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str | None) -> SafeString:
    return mark_safe(render_markdown(text or ""))  # noqa: S308  (sanitised by nh3)


@register.filter(name="passage")
def passage_filter(text: str | None) -> SafeString:
    return mark_safe(render_passage(text or ""))  # noqa: S308  (sanitised by nh3)
