"""Folding text into skeletons that filters can match, whatever disguise the writer chose.

Evasion in Russian and English game chats mixes four tricks: look-alike letters from the other
alphabet (`xуй` with a Latin x, `fuсk` with a Cyrillic с), repeated letters (`бляяяя`), separators
(`х.у.й`, `f u c k`, `п-и-з-д-а`) and leet digits (`3ae6al`, `sh1t`). Each token is folded twice:
into a Latin skeleton (for English words) and into Cyrillic skeletons (for Russian roots; a purely
Latin token is also transliterated, since `blyat` and `pizdec` are Russian typed in Latin). Diacritics
are stripped (`fück`), `ё` becomes `е` and `й` becomes `и`, and the same folding is applied to the
word lists, so both sides meet in the same form.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from services.chat.messages import strip_invisible

# Cyrillic (and a few symbols) to the Latin letter they look like, plus leet digits.
_TO_LATIN = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
        "т": "t", "у": "y", "х": "x", "ь": "b", "и": "u", "п": "n", "г": "r", "з": "3", "д": "d",
        "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
        "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e",
    }
)  # fmt: skip

# Latin look-alikes (and leet) to Cyrillic, for tokens that already contain Cyrillic letters.
_LOOKALIKE_TO_CYR = str.maketrans(
    {
        "a": "а", "b": "б", "c": "с", "e": "е", "h": "н", "k": "к", "m": "м", "o": "о", "p": "р",
        "t": "т", "x": "х", "y": "у", "u": "и", "n": "п", "r": "г", "i": "и", "l": "л", "d": "д",
        "3": "з", "0": "о", "4": "ч", "6": "б", "@": "а", "$": "с", "1": "и", "!": "и", "8": "в",
    }
)  # fmt: skip

# Transliteration of Russian typed in Latin (digraphs first).
_DIGRAPHS = (
    ("shch", "щ"), ("sch", "щ"), ("ch", "ч"), ("sh", "ш"), ("zh", "ж"), ("kh", "х"), ("ts", "ц"),
    ("ya", "я"), ("ja", "я"), ("yu", "ю"), ("ju", "ю"), ("yo", "е"), ("jo", "е"), ("ye", "е"),
)  # fmt: skip
_TRANSLIT = str.maketrans(
    {
        "a": "а", "b": "б", "v": "в", "g": "г", "d": "д", "e": "е", "z": "з", "i": "и", "j": "и",
        "k": "к", "l": "л", "m": "м", "n": "н", "o": "о", "p": "п", "r": "р", "s": "с", "t": "т",
        "u": "у", "f": "ф", "h": "х", "c": "ц", "x": "х", "y": "ы", "w": "в", "q": "к",
        "0": "о", "3": "з", "4": "ч", "6": "б", "@": "а", "$": "с", "1": "и", "!": "и",
    }
)  # fmt: skip

_SEPARATORS = re.compile(r"[^\w@$!|+€]|_")
_LEET_ONLY = re.compile(r"^[\d@$!|+€]+$")
_REPEATS_1 = re.compile(r"(.)\1+")
_REPEATS_2 = re.compile(r"(.)\1{2,}")
_CYRILLIC = re.compile("[а-я]")
_LATIN = re.compile("[a-z]")


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


def collapse(token: str, keep: int = 1) -> str:
    """`fuuuck` -> `fuck` (keep=1) or `fuuck` (keep=2)."""
    return (_REPEATS_1 if keep == 1 else _REPEATS_2).sub(r"\1" * keep, token)


@dataclass
class Folded:
    """One token in every form a filter may need."""

    raw: str
    latin: str  # Latin skeleton, repeats kept to two
    latin1: str  # Latin skeleton, repeats collapsed to one
    cyrillic: list[str] = field(default_factory=list)  # Cyrillic skeletons, repeats collapsed to one


def _base(text: str) -> str:
    text = unicodedata.normalize("NFKC", strip_invisible(text)).casefold()
    return _strip_marks(text.replace("ё", "е").replace("й", "и"))


def _clean_token(token: str) -> str:
    return _SEPARATORS.sub("", token)


def raw_tokens(text: str) -> list[str]:
    """Tokens with separators removed; runs of three or more one-letter tokens (`f u c k`) joined."""
    pieces = [_clean_token(t) for t in _base(text).split()]
    pieces = [p for p in pieces if p]
    tokens: list[str] = []
    run: list[str] = []
    for piece in [*pieces, ""]:
        if len(piece) == 1:
            run.append(piece)
            continue
        if len(run) >= 3:
            tokens.append("".join(run))
        else:
            tokens.extend(run)
        run = []
        if piece:
            tokens.append(piece)
    return tokens


def _translit(token: str) -> str:
    for latin, cyr in _DIGRAPHS:
        token = token.replace(latin, cyr)
    return token.translate(_TRANSLIT)


def fold_token(token: str) -> Folded:
    latin = "".join(ch for ch in token.translate(_TO_LATIN) if ch.isalpha())
    forms: list[str] = []
    if not _LEET_ONLY.match(token):  # numbers like 300 or 1337 are not words
        if _CYRILLIC.search(token):
            forms.append(token.translate(_LOOKALIKE_TO_CYR))
        elif _LATIN.search(token):
            forms.append(_translit(token))
            forms.append(token.translate(_LOOKALIKE_TO_CYR))
    cyrillic = list(dict.fromkeys(collapse("".join(ch for ch in f if ch.isalpha())) for f in forms))
    return Folded(token, collapse(latin, 2), collapse(latin, 1), [c for c in cyrillic if c])


def fold(text: str) -> list[Folded]:
    """Every token of `text`, folded."""
    return [fold_token(t) for t in raw_tokens(text)]


def fold_word(word: str) -> str:
    """A word-list entry folded like text: the Latin skeleton (repeats kept to two) of each token."""
    return " ".join(f.latin for f in fold(word))


def fold_cyrillic(word: str) -> str:
    """A Cyrillic word-list entry folded like text (repeats collapsed to one)."""
    return " ".join(f.cyrillic[0] if f.cyrillic else f.latin1 for f in fold(word))
