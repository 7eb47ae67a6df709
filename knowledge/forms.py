"""Forms of the HTML pages and their user-facing validation messages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .uploads import upload_refusal

MAX_ID = 2**63 - 1  # the largest primary key the databases store


def upload_problem(upload: UploadedFile) -> str | None:
    """Why an uploaded file is refused before it is stored (the upload rule,
    knowledge.uploads.refusal), in one sentence; None if it is fine."""
    refused = upload_refusal(upload)
    return str(refused) if refused else None


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.Field):
    """Several files in one field; each is judged later on its own (upload_problem), so that
    one bad file does not refuse the others."""

    widget = MultipleFileInput

    def to_python(self, data: object) -> list[UploadedFile]:
        files = data if isinstance(data, list | tuple) else [data]
        return [item for item in files if isinstance(item, UploadedFile)]


class UploadForm(forms.Form):
    """One or more files for a knowledge base, and the password of protected PDFs."""

    file = MultipleFileField(
        error_messages={"required": gettext_lazy("Choose at least one file to upload.")}
    )
    password = forms.CharField(required=False, max_length=200)


class ReplaceForm(forms.Form):
    """A new file that replaces a document once it is indexed."""

    file = forms.FileField(
        allow_empty_file=True,  # the upload rule says why, as elsewhere
        error_messages={"required": gettext_lazy("Choose the file that replaces it.")},
    )

    def clean_file(self) -> UploadedFile:
        upload = self.cleaned_data["file"]
        if problem := upload_problem(upload):
            raise forms.ValidationError(problem)
        return upload


class IdListField(forms.Field):
    """A list of whole-number ids from repeated form fields."""

    widget = forms.SelectMultiple

    def to_python(self, value: Any) -> list[int]:
        if not value:
            return []
        values = value if isinstance(value, list | tuple) else [value]
        try:
            ids = sorted({int(item) for item in values})
        except (TypeError, ValueError):
            ids = [0]
        if not all(0 < pk <= MAX_ID for pk in ids):  # beyond MAX_ID the database errs
            raise forms.ValidationError(_("Knowledge bases are given by their numeric ids."))
        return ids


class AskForm(forms.Form):
    """A question over some of the user's knowledge bases, optionally in a conversation."""

    question = forms.CharField(
        max_length=4000,
        strip=True,
        error_messages={"required": gettext_lazy("Type a question first.")},
    )
    # Ids only: whether the user may read them is decided by services, and a foreign id
    # answers 404 exactly like a missing one.
    knowledge_bases = IdListField(
        error_messages={"required": gettext_lazy("Choose at least one knowledge base.")},
    )
    conversation = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    regenerate = forms.BooleanField(required=False)


class FeedbackForm(forms.Form):
    rating = forms.TypedChoiceField(
        choices=[(1, gettext_lazy("helpful")), (-1, gettext_lazy("not helpful"))],
        coerce=int,
        error_messages={"required": gettext_lazy("Choose thumbs up or thumbs down.")},
    )
    comment = forms.CharField(required=False, max_length=2000, strip=True)
