"""The built-in Russian and English lexicon, and the matcher shared with the streamer's blocked words.

Sources: the English and Russian lists of `glin-profanity` (MIT, maintained, shipped as data in the
wheel and read offline), minus `data/lexicon_exclusions.txt` (game-chat words such as "sucks" or
"wtf" and neutral Russian words its list carries), plus `data/ru_roots.txt`: Russian obscene roots as
patterns, because Russian inflects (пиздец, охуенно, заебал) and glin's Russian list is mostly
transliterated whole phrases. Every entry and every message is folded by `services.chat.normalise`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from glin_profanity.data.dictionary import DictionaryLoader

from services.chat.normalise import Folded, collapse, fold, fold_cyrillic, fold_word

DATA = Path(__file__).resolve().parent / "data"

# English words that are offensive wherever they appear inside a longer token (`fuckingidiot`).
_EMBEDDED_EN = ("fuck", "fuk", "shit", "bitch", "nigger", "nigga", "faggot", "whore", "motherf")


def _lines(name: str) -> list[str]:
    text = (DATA / name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@dataclass(frozen=True)
class Match:
    term: str
    source: str  # "lexicon" or "blocked"


class WordMatcher:
    """Matches folded messages against word lists (whole tokens and phrases) and Russian root patterns."""

    def __init__(
        self,
        words: Iterable[str],
        *,
        patterns: Iterable[str] = (),
        exceptions: Iterable[str] = (),
        embedded: Iterable[str] = (),
        source: str = "blocked",
    ) -> None:
        self.source = source
        self._latin: dict[str, str] = {}
        self._latin1: dict[str, str] = {}
        self._cyrillic: dict[str, str] = {}
        self._max_words = 1
        for word in words:
            latin = fold_word(word)
            if not latin:
                continue
            self._max_words = max(self._max_words, latin.count(" ") + 1)
            self._latin.setdefault(latin, word)
            one = collapse(latin, 1)
            if len(one.replace(" ", "")) >= 4:  # "ass" collapsed is "as": only longer words collapse
                self._latin1.setdefault(one, word)
            if re.search("[а-яё]", word.casefold()):
                self._cyrillic.setdefault(fold_cyrillic(word), word)
        self._patterns = [re.compile(p) for p in patterns]
        self._exceptions = [e for e in exceptions if e]
        self._embedded = [collapse(fold_word(e), 1) for e in embedded]

    def _root_hit(self, form: str) -> str | None:
        if any(e in form for e in self._exceptions):
            return None
        for pattern in self._patterns:
            if pattern.search(form):
                return pattern.pattern
        return None

    def find(self, text: str | list[Folded]) -> Match | None:
        tokens = fold(text) if isinstance(text, str) else text
        for i, token in enumerate(tokens):
            for n in range(1, self._max_words + 1):
                group = tokens[i : i + n]
                if len(group) < n:
                    break
                latin = " ".join(t.latin for t in group)
                latin1 = " ".join(t.latin1 for t in group)
                for table, key in ((self._latin, latin), (self._latin1, latin1)):
                    if key in table:
                        return Match(table[key], self.source)
                for forms in _products([t.cyrillic for t in group]):
                    if forms in self._cyrillic:
                        return Match(self._cyrillic[forms], self.source)
            for embedded in self._embedded:
                if embedded in token.latin1:
                    return Match(embedded, self.source)
            for form in token.cyrillic:
                hit = self._root_hit(form)
                if hit is not None:
                    return Match(hit, self.source)
        return None


def _products(options: list[list[str]]) -> list[str]:
    """Space-joined combinations of each token's Cyrillic forms (at most a handful per phrase)."""
    combos = [""]
    for forms in options:
        if not forms:
            return []
        combos = [f"{c} {f}".strip() for c in combos for f in forms]
    return combos


@lru_cache(maxsize=1)
def builtin_lexicon() -> WordMatcher:
    """glin-profanity's English and Russian lists minus exclusions, plus Russian root patterns."""
    loader = DictionaryLoader()
    excluded = set(_lines("lexicon_exclusions.txt"))
    words = [w for lang in ("english", "russian") for w in loader.get_words(lang) if w not in excluded]
    roots = _lines("ru_roots.txt")
    return WordMatcher(
        words,
        patterns=[r for r in roots if not r.startswith("!")],
        exceptions=[r[1:] for r in roots if r.startswith("!")],
        embedded=_EMBEDDED_EN,
        source="lexicon",
    )


def blocked_words(words: Iterable[str]) -> WordMatcher:
    """The streamer's own list: whole words or phrases, folded like the lexicon, no patterns."""
    return WordMatcher(words, embedded=(), source="blocked")
