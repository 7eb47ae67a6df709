"""E-mail messages (.eml, RFC 5322 / MIME) as text sections, and their attachments.

A message is one page: its From, To, Cc, Date and Subject headers, then its plain-text body (or
its HTML body as visible text). Attachments whose content is of a type we read are returned
in ParsedDocument.attachments for the caller to ingest as documents of their own.
"""

from __future__ import annotations

import logging
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import PureWindowsPath

from retrieval.errors import EmptyDocumentError, ParseError
from retrieval.parsing import _clean_text, _parse_html, _title, detect_file_type
from retrieval.types import Attachment, ParsedDocument, Section

logger = logging.getLogger(__name__)

MAX_ATTACHMENTS = 50
_SHOWN_HEADERS = ("From", "To", "Cc", "Date", "Subject")
_HEADER_LINE = re.compile(r"([A-Za-z][A-Za-z0-9-]*):")
_MESSAGE_HEADERS = {
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "received",
    "return-path",
    "delivered-to",
    "reply-to",
    "content-type",
}


def looks_like_email(text: str) -> bool:
    """Tell whether text starts with a header block of an e-mail message (From and Subject,
    Date or Message-ID among them), whatever the file is called."""
    names = set()
    for line in text[:16384].splitlines()[:200]:
        if not line.strip():
            break
        if line[0] in " \t":
            continue  # a folded header
        header = _HEADER_LINE.match(line)
        if header is None:
            return False
        names.add(header.group(1).lower())
    return "from" in names and bool(names & {"subject", "date", "message-id"})


def parse_email(data: bytes, filename: str) -> ParsedDocument:
    """Read a message's headers and body as page 1; list its readable attachments."""
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    lines = [f"{name}: {message[name]}" for name in _SHOWN_HEADERS if message[name]]
    body = _body_text(message, filename)
    attachments, warnings = _attachments(message)
    names = ", ".join(attachment.name for attachment in attachments)
    lines += ["", body] + ([f"\nAttachments: {names}"] if names else [])
    text = _clean_text("\n".join(lines))
    if not body.strip() and not attachments:
        raise EmptyDocumentError("The message has no text.")
    title = _title(filename, str(message["Subject"] or ""))
    return ParsedDocument("eml", title, [Section(text, 1)], 1, warnings, attachments)


def _body_text(message: EmailMessage, filename: str) -> str:
    """The plain-text body, else the HTML body's visible text, else ""."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError) as error:  # an unknown charset, a broken encoding
        logger.warning("Unreadable body of %r: %s", filename, error)
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if part.get_content_subtype() == "html":
        try:
            html = _parse_html(content, filename)
        except ParseError:
            return ""
        return "\n\n".join(section.text for section in html.sections)
    return content


def _attachments(message: EmailMessage) -> tuple[list[Attachment], list[str]]:
    """The attachments of a type we read (judged from their content), and notes on the rest."""
    found: list[Attachment] = []
    warnings: list[str] = []
    for part in message.iter_attachments():
        if part.get_content_disposition() != "attachment":
            continue  # inline pictures: logos and signatures
        name = PureWindowsPath(part.get_filename() or "attachment").name
        data = _part_bytes(part)
        try:
            detect_file_type(data, name)
        except ParseError as error:
            warnings.append(f"The attachment {name} was not indexed: {error}")
            continue
        if len(found) == MAX_ATTACHMENTS:
            warnings.append(f"Only the first {MAX_ATTACHMENTS} attachments were indexed.")
            break
        found.append(Attachment(name, data))
    return found, warnings


def _part_bytes(part: EmailMessage) -> bytes:
    """An attachment's content as the bytes of the file it was."""
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    content = part.get_content()  # an attached message
    return content.as_bytes() if isinstance(content, EmailMessage) else str(content).encode()
