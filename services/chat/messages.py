"""Validation and sanitising of what a client sends, before moderation ever sees it.

Invisible characters are removed rather than refused: zero-width joiners and bidi overrides are how
people smuggle words past filters or flip text on screen. C0/C1 controls other than the newline are
removed too; a message that is empty after that is refused. Length is counted in code points after
normalisation (NFC), so the limit means what the user sees.
"""

from __future__ import annotations

import re
import unicodedata

MAX_FRAME_BYTES = 8192
MAX_MESSAGE_CHARS = 500

# Zero-width and bidi formatting characters (category Cf), variation selectors, and the like.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f]"
)
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_BLANK_LINES = re.compile(r"\n{3,}")


class MessageRejected(ValueError):
    """A message refused before moderation; `code` is machine-readable, `detail` is for people."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def decode_frame(raw: bytes) -> str:
    """Binary frames must still be UTF-8 text; anything else is refused with a clear code."""
    if len(raw) > MAX_FRAME_BYTES:
        raise MessageRejected("too_large", f"frame over {MAX_FRAME_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MessageRejected("invalid_utf8", "the message is not valid UTF-8") from None


def strip_invisible(text: str) -> str:
    return _INVISIBLE.sub("", text)


def sanitise(text: str, max_chars: int = MAX_MESSAGE_CHARS) -> str:
    """The text as it will be stored and shown: NFC, no controls or invisibles, trimmed."""
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise MessageRejected("invalid_utf8", "the message contains unpaired surrogates")
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = strip_invisible(_CONTROL.sub("", text))
    text = _BLANK_LINES.sub("\n\n", text).strip()
    if not text:
        raise MessageRejected("empty", "the message is empty")
    if len(text) > max_chars:
        raise MessageRejected("too_long", f"the message is longer than {max_chars} characters")
    return text


_MENTION = re.compile(r"(?<![\w@])@([\w.\-]{2,32})")


def mentions(text: str) -> list[str]:
    """`@name` mentions, in order, without duplicates."""
    return list(dict.fromkeys(m.group(1) for m in _MENTION.finditer(text)))


_EMOTE = re.compile(r":[a-z0-9_]{2,32}:", re.IGNORECASE)


def is_emote_only(text: str) -> bool:
    """Emote-only mode: every word is an emote code (`:name:`) or a pictographic emoji."""
    for word in text.split():
        if _EMOTE.fullmatch(word):
            continue
        if all(unicodedata.category(ch) == "So" or ord(ch) in (0x200D, 0xFE0F) for ch in word):
            continue
        return False
    return True
