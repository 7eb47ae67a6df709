"""The interface's translation catalogues: locale/zh_Hans/LC_MESSAGES/*.po are written by hand;
the Traditional Chinese ones (zh_Hant) are made from them with OpenCC (s2twp: Taiwan script and
phrasing, e.g. 文档 -> 文件, 上传 -> 上傳), then every catalogue is compiled to .mo with GNU
gettext's msgfmt (Django's compilemessages). Neither the zh_Hant .po nor any .mo is committed:
`manage.py build_catalogues` makes them (make install/run/test call it; so does the test run).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.management import call_command

SIMPLIFIED = "zh_Hans"
TRADITIONAL = "zh_Hant"
# Folders compilemessages need not walk for locale/ folders of their own.
IGNORED = [".*", "var", "node_modules", "__pycache__", "*.egg-info", "tests", "bench", "docs"]
# Corner brackets are the quotation marks of Traditional Chinese text.
TRADITIONAL_QUOTES = str.maketrans({"“": "「", "”": "」", "‘": "『", "’": "』"})
# Where s2twp's phrase tables pick a word a Taiwanese reader would not use in an interface.
TAIWAN_WORDS = {
    "許可權": "權限",  # 权限 read as "licence rights"
    "型別": "類型",  # a programming language's "type", not a file's
    "退出登入": "登出",
    "管理後臺": "管理後台",
    "純文本": "純文字",
    "反饋": "回饋",
}
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class Entry:
    """One message of a .po file (the header is the entry whose msgid is empty)."""

    comments: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    msgctxt: str | None = None
    msgid: str = ""
    msgid_plural: str | None = None
    msgstr: list[str] = field(default_factory=list)

    @property
    def fuzzy(self) -> bool:
        return "fuzzy" in self.flags


def locale_dir() -> Path:
    return Path(settings.LOCALE_PATHS[0])


def read_catalogue(text: str) -> list[Entry]:
    """The entries of a .po file's text, strings unescaped (obsolete #~ entries left out)."""
    entries = []
    for block in re.split(r"\n\s*\n", text.strip()):
        entry, target = Entry(), None
        for line in block.splitlines():
            if line.startswith("#~"):
                target = None
            elif line.startswith("#,"):
                entry.flags += [flag.strip() for flag in line[2:].split(",") if flag.strip()]
            elif line.startswith("#"):
                entry.comments.append(line)
            elif line.startswith(("msgctxt", "msgid", "msgstr")):
                keyword = line.split(None, 1)[0]
                target = keyword
                value = _unquote(line)
                if keyword == "msgctxt":
                    entry.msgctxt = value
                elif keyword == "msgid":
                    entry.msgid = value
                elif keyword == "msgid_plural":
                    entry.msgid_plural = value
                else:
                    entry.msgstr.append(value)
            elif line.startswith('"') and target:
                value = _unquote(line)
                if target == "msgctxt":
                    entry.msgctxt = (entry.msgctxt or "") + value
                elif target == "msgid":
                    entry.msgid += value
                elif target == "msgid_plural":
                    entry.msgid_plural = (entry.msgid_plural or "") + value
                else:
                    entry.msgstr[-1] += value
        if target is not None or entry.msgstr:
            entries.append(entry)
    return entries


def write_catalogue(entries: list[Entry]) -> str:
    """A .po file's text for the entries (one line per string)."""
    blocks = []
    for entry in entries:
        lines = list(entry.comments)
        if entry.flags:
            lines.append("#, " + ", ".join(entry.flags))
        if entry.msgctxt is not None:
            lines.append(f"msgctxt {_quote(entry.msgctxt)}")
        lines.append(f"msgid {_quote(entry.msgid)}")
        if entry.msgid_plural is not None:
            lines.append(f"msgid_plural {_quote(entry.msgid_plural)}")
            lines += [f"msgstr[{n}] {_quote(text)}" for n, text in enumerate(entry.msgstr)]
        else:
            lines.append(f"msgstr {_quote(entry.msgstr[0] if entry.msgstr else '')}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def traditional_catalogue(simplified: str) -> str:
    """The zh_Hans catalogue's text converted to zh_Hant (translations only; msgids stay)."""
    try:
        import opencc
    except ImportError:
        raise RuntimeError(
            "The zh-hant catalogue is made with OpenCC: pip install opencc (a dependency)."
        ) from None
    converter = opencc.OpenCC("s2twp")
    entries = read_catalogue(simplified)
    for entry in entries:
        if entry.msgid == "":  # the header
            header = entry.msgstr[0].replace(f"Language: {SIMPLIFIED}", f"Language: {TRADITIONAL}")
            header = header.replace("(Simplified)", "(Traditional)")
            entry.msgstr = [header]
            entry.comments = [
                f"# Made from ../../{SIMPLIFIED}/LC_MESSAGES by `manage.py build_catalogues`"
                " (OpenCC s2twp); edit that file, not this one."
            ]
        else:
            entry.msgstr = [to_traditional(converter, text) for text in entry.msgstr]
    return write_catalogue(entries)


def to_traditional(converter, text: str) -> str:
    converted = converter.convert(text).translate(TRADITIONAL_QUOTES)
    for word, usual in TAIWAN_WORDS.items():
        converted = converted.replace(word, usual)
    return converted


def write_traditional_catalogues(force: bool = False) -> list[Path]:
    """zh_Hant/LC_MESSAGES/*.po from zh_Hans's, where missing or older; the files written."""
    written = []
    for source in sorted((locale_dir() / SIMPLIFIED / "LC_MESSAGES").glob("*.po")):
        target = locale_dir() / TRADITIONAL / "LC_MESSAGES" / source.name
        if not force and target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(traditional_catalogue(source.read_text(encoding="utf-8")), "utf-8")
        written.append(target)
    return written


def build_catalogues(force: bool = False, verbosity: int = 0) -> None:
    """Make the zh_Hant catalogues, then compile every stale .po (needs GNU gettext's msgfmt)."""
    write_traditional_catalogues(force)
    if force:
        for compiled in locale_dir().glob("*/LC_MESSAGES/*.mo"):
            compiled.unlink()
    with contextlib.chdir(settings.BASE_DIR):
        call_command("compilemessages", ignore_patterns=IGNORED, verbosity=verbosity)


def _unquote(line: str) -> str:
    parts = _QUOTED.findall(line)
    return "".join(_unescape(part) for part in parts)


def _unescape(text: str) -> str:
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(0)), text)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    return '"' + escaped.replace("\n", "\\n") + '"'
