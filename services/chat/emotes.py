"""Emotes and stickers: the catalogue (global defaults as data, channel ones from the node's database),
the rules for names and image URLs, and parsing a message into text and emote tokens.

Messages carry the parsed tokens so every client renders the same thing without a catalogue of its own:
`[{"t": "text", "v": "hi "}, {"t": "emote", "code": "wave", "url": "/chat/emotes/wave.svg"}]`.
Text tokens are text (the page puts them in text nodes); an emote's URL passed `check_url`, so it is an
https image or one of the node's own, never `javascript:` or markup.

A subscriber-only emote used by someone below its tier refuses the whole message (`emote_locked`),
rather than silently showing `:code:` as text: the writer learns why at once, and nobody sees a
half-rendered message. An unknown `:code:` is ordinary text (people type colons), except in emote-only
mode, where it does not count as an emote.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import yaml

CODE = re.compile(r"^[A-Za-z0-9_]{2,32}$")
MAX_CODE_CHARS = 32
MAX_URL_CHARS = 300
MAX_TIER = 3
_IN_TEXT = re.compile(r":([A-Za-z0-9_]{2,32}):")
_HTTPS = re.compile(r"^https://[A-Za-z0-9.\-]+(:\d{1,5})?/[A-Za-z0-9._~/%\-]*(\?[A-Za-z0-9._~=&%\-]*)?$")
_LOCAL = re.compile(r"^/chat/emotes/[a-z0-9_\-]{1,64}\.(svg|png|webp|gif)$")
GLOBAL_FILE = Path(__file__).resolve().parent / "data" / "emotes.yaml"


class Kind(StrEnum):
    EMOTE = "emote"
    STICKER = "sticker"


class ContentError(ValueError):
    """Bad emote or sticker input; `code` for programs, `detail` for people, `status` for HTTP."""

    def __init__(self, code: str, detail: str, status: int = 422, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        self.extra = extra


@dataclass(frozen=True)
class Emote:
    code: str
    url: str
    min_tier: int = 0
    kind: Kind = Kind.EMOTE
    scope: str = "global"  # "global" or "channel"

    def public(self) -> dict[str, Any]:
        return {"code": self.code, "url": self.url, "min_tier": self.min_tier, "scope": self.scope}


def check_code(code: str) -> str:
    """A name people can type between colons: anything else (markup, spaces, 33+ chars) is refused."""
    if not isinstance(code, str) or len(code) > MAX_CODE_CHARS or not CODE.fullmatch(code):
        shown = code[:40] if isinstance(code, str) else type(code).__name__
        raise ContentError(
            "bad_emote_name",
            f"an emote or sticker name is 2 to {MAX_CODE_CHARS} letters, digits or _ (got {shown!r})",
        )
    return code


def check_url(url: str) -> str:
    """An https image URL or a node-served `/chat/emotes/<file>`: no other scheme, no quotes or markup."""
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS or not (_HTTPS.match(url) or _LOCAL.match(url)):
        raise ContentError(
            "bad_emote_url",
            f"an emote image is an https:// URL or /chat/emotes/<file>, at most {MAX_URL_CHARS} characters",
        )
    return url


def check_tier(tier: int) -> int:
    if not isinstance(tier, int) or isinstance(tier, bool) or not 0 <= tier <= MAX_TIER:
        raise ContentError("bad_tier", f"min_tier is 0 (everyone) to {MAX_TIER}")
    return tier


def _load(items: Iterable[Mapping[str, Any]], kind: Kind) -> dict[str, Emote]:
    out: dict[str, Emote] = {}
    for item in items:
        emote = Emote(
            check_code(item["code"]), check_url(item["url"]), check_tier(item.get("min_tier", 0)), kind
        )
        if emote.code in out:
            raise ValueError(f"{GLOBAL_FILE.name}: {kind} {emote.code} listed twice")
        out[emote.code] = emote
    return out


@cache
def global_catalogue() -> tuple[dict[str, Emote], dict[str, Emote]]:
    """The global emotes and stickers from `data/emotes.yaml`, checked by the same rules as channel ones."""
    data = yaml.safe_load(GLOBAL_FILE.read_text(encoding="utf-8")) or {}
    return _load(data.get("emotes", ()), Kind.EMOTE), _load(data.get("stickers", ()), Kind.STICKER)


@dataclass(frozen=True)
class Catalogue:
    """One channel's emotes and stickers: the global ones plus its own."""

    emotes: Mapping[str, Emote]
    stickers: Mapping[str, Emote]

    @classmethod
    def with_channel(cls, own: Iterable[Emote]) -> Catalogue:
        emotes, stickers = (dict(d) for d in global_catalogue())
        for e in own:
            (emotes if e.kind is Kind.EMOTE else stickers).setdefault(e.code, e)
        return cls(emotes, stickers)

    def public(self) -> dict[str, Any]:
        return {
            "emotes": [e.public() for e in self.emotes.values()],
            "stickers": [s.public() for s in self.stickers.values()],
        }

    def sticker(self, code: str, tier: int) -> Emote:
        """The sticker a message names, or a clear error (bad name, unknown id, tier too low)."""
        found = self.stickers.get(check_code(code))
        if found is None:
            raise ContentError("unknown_sticker", f"no sticker {code!r} in this chat", 404)
        if tier < found.min_tier:
            raise ContentError(
                "sticker_locked",
                f"the {code} sticker is for tier {found.min_tier} subscribers",
                403,
                min_tier=found.min_tier,
            )
        return found


Token = dict[str, str]


def tokenise(text: str, catalogue: Catalogue, tier: int) -> list[Token]:
    """Split a message into text and emote tokens; raises `emote_locked` for an emote above `tier`."""
    tokens: list[Token] = []
    locked: list[Emote] = []
    at = 0
    for match in _IN_TEXT.finditer(text):
        emote = catalogue.emotes.get(match.group(1))
        if emote is None:
            continue
        if tier < emote.min_tier:
            locked.append(emote)
            continue
        if match.start() > at:
            tokens.append({"t": "text", "v": text[at : match.start()]})
        tokens.append({"t": "emote", "code": emote.code, "url": emote.url})
        at = match.end()
    if locked:
        need = max(e.min_tier for e in locked)
        names = ", ".join(sorted({f":{e.code}:" for e in locked}))
        raise ContentError(
            "emote_locked",
            f"{names} {'is' if len(locked) == 1 else 'are'} for tier {need} subscribers",
            403,
            min_tier=need,
        )
    if at < len(text):
        tokens.append({"t": "text", "v": text[at:]})
    return tokens


def _pictographic(word: str) -> bool:
    return all(unicodedata.category(ch) == "So" or ord(ch) in (0x200D, 0xFE0F) for ch in word)


def is_emote_only(tokens: list[Token]) -> bool:
    """Emote-only mode: catalogue emotes and emoji, nothing else (an unknown `:code:` is text)."""
    has_any = False
    for token in tokens:
        if token["t"] == "emote":
            has_any = True
            continue
        for word in token["v"].split():
            if not _pictographic(word):
                return False
            has_any = True
    return has_any
