"""Auto-moderation: rules, their per-channel configuration, and the verdict for one message.

Rules run in a fixed order and the first that fires decides. Each rule's action is configurable:
`hide` (stored, not shown to others; the sender is told), `hold` (queued for a moderator to approve or
reject) or `timeout` (hidden, and the sender is timed out). The flood limit (Owncast's 3 messages in
2 seconds by default) and slow mode are rate limits, not rules: the message is refused with a
`retry_after`, and nothing is stored. Stateful checks take the clock as an argument so tests and the
evaluation script replay time exactly.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from services.chat.lexicon import WordMatcher, blocked_words, builtin_lexicon
from services.chat.normalise import fold


class Action(StrEnum):
    HIDE = "hide"
    HOLD = "hold"
    TIMEOUT = "timeout"


class Rule(StrEnum):
    BLOCKED = "blocked"  # the streamer's own words
    PROFANITY = "profanity"  # the built-in lexicon
    LINKS = "links"
    CAPS = "caps"
    REPEAT = "repeat"


class AutoModConfig(BaseModel):
    """A channel's auto-moderation settings (stored as JSON by the node)."""

    model_config = ConfigDict(extra="forbid")
    profanity: bool = True
    blocked_words: list[str] = Field(default_factory=list, max_length=1000)
    link_allow: list[str] = Field(
        default_factory=list, max_length=200, description="Domains whose links pass (subdomains too)."
    )
    caps_min_letters: int = Field(12, ge=1)
    caps_max_ratio: float = Field(0.7, gt=0, le=1)
    repeat_max: int = Field(2, ge=1, description="The same text this many times is fine; one more is not.")
    repeat_window_seconds: float = Field(60.0, gt=0)
    actions: dict[Rule, Action] = Field(
        default_factory=lambda: {
            Rule.BLOCKED: Action.HIDE,
            Rule.PROFANITY: Action.HIDE,
            Rule.LINKS: Action.HOLD,
            Rule.CAPS: Action.HIDE,
            Rule.REPEAT: Action.HIDE,
        }
    )
    timeout_seconds: int = Field(300, ge=1, le=1_209_600)


@dataclass(frozen=True)
class Verdict:
    rule: Rule
    action: Action
    detail: str


# ---- stateless checks --------------------------------------------------------------------------------

_LINK = re.compile(
    r"(?:https?://|www\.)\S+|\b(?:[a-z0-9-]{1,63}\s?[.,]\s?)+(?:com|ru|net|org|io|gg|tv|me|su|рф|xyz|ly|co|info|biz|cc|site|online|shop|top|link|pro)\b(?:/\S*)?",
    re.IGNORECASE,
)
_HOST = re.compile(r"(?:https?://)?(?:www\.)?([^/\s:?#]+)", re.IGNORECASE)


def find_links(text: str) -> list[str]:
    """Links, also disguised ones (`site . ru`, `bit,ly`)."""
    return [m.group(0) for m in _LINK.finditer(text)]


def _host(link: str) -> str:
    match = _HOST.match(re.sub(r"\s", "", link).replace(",", "."))
    return match.group(1).lower().rstrip(".") if match else ""


def disallowed_link(text: str, allow: list[str]) -> str | None:
    allowed = [a.lower().lstrip(".") for a in allow]
    for link in find_links(text):
        host = _host(link)
        if not any(host == a or host.endswith("." + a) for a in allowed):
            return link
    return None


def too_many_caps(text: str, min_letters: int, max_ratio: float) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) < min_letters:
        return False
    upper = sum(1 for ch in letters if ch.isupper())
    return upper / len(letters) > max_ratio


def repeat_key(text: str) -> str:
    """What counts as 'the same message': folded, repeats collapsed, case and separators ignored."""
    return " ".join(t.latin1 + "/" + (t.cyrillic[0] if t.cyrillic else "") for t in fold(text))


# ---- stateful limits -----------------------------------------------------------------------------------


class SlidingWindow:
    """At most `limit` events per `seconds` per key (the flood limit)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._events: dict[str, deque[float]] = defaultdict(deque)

    def hit(self, key: str, now: float) -> float:
        """Record an event; returns 0 if allowed, else seconds until the next one would be."""
        events = self._events[key]
        while events and events[0] <= now - self.seconds:
            events.popleft()
        if len(events) >= self.limit:
            return events[0] + self.seconds - now
        events.append(now)
        return 0.0

    def forget_idle(self, now: float) -> None:
        for key in [k for k, v in self._events.items() if not v or v[-1] <= now - self.seconds]:
            del self._events[key]


class RepeatTracker:
    """Counts the same (folded) message from one user within a window."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[tuple[float, str]]] = defaultdict(deque)

    def count(self, user: str, text: str, now: float, window: float) -> int:
        """Record `text` and return how many times the user sent it within the window, this one included."""
        key = repeat_key(text)
        seen = self._seen[user]
        while seen and seen[0][0] <= now - window:
            seen.popleft()
        seen.append((now, key))
        while len(seen) > 50:
            seen.popleft()
        return sum(1 for _, k in seen if k == key)


# ---- the whole verdict ---------------------------------------------------------------------------------


class AutoMod:
    """Evaluates messages of one channel against its configuration."""

    def __init__(self, config: AutoModConfig | None = None) -> None:
        self.repeats = RepeatTracker()
        self.configure(config or AutoModConfig())

    def configure(self, config: AutoModConfig) -> None:
        self.config = config
        self._blocked: WordMatcher | None = (
            blocked_words(config.blocked_words) if config.blocked_words else None
        )

    def check(self, rule: Rule, text: str, *, user: str = "", now: float = 0.0) -> str | None:
        """Whether one rule fires on `text` (a detail string) or not (None); the evaluation uses it."""
        c = self.config
        if rule is Rule.BLOCKED:
            match = self._blocked.find(text) if self._blocked else None
            return match.term if match else None
        if rule is Rule.PROFANITY:
            match = builtin_lexicon().find(text) if c.profanity else None
            return match.term if match else None
        if rule is Rule.LINKS:
            return disallowed_link(text, c.link_allow)
        if rule is Rule.CAPS:
            return "too many capitals" if too_many_caps(text, c.caps_min_letters, c.caps_max_ratio) else None
        count = self.repeats.count(user, text, now, c.repeat_window_seconds)
        return f"sent {count} times" if count > c.repeat_max else None

    def evaluate(
        self, text: str, *, user: str, now: float, skip: frozenset[Rule] = frozenset()
    ) -> Verdict | None:
        """The first rule that fires, with its action; `skip` holds rules the sender is exempt from."""
        for rule in (Rule.REPEAT, Rule.BLOCKED, Rule.PROFANITY, Rule.LINKS, Rule.CAPS):
            if rule in skip:
                continue
            detail = self.check(rule, text, user=user, now=now)
            if detail is not None:
                return Verdict(rule, self.config.actions.get(rule, Action.HIDE), detail)
        return None
