"""Which game (or category) a channel is streaming: normalising what a streamer types, and its slug.

A streamer types free text; analytics and recommendations need one stable key per game, so every name
becomes a `Game(name, slug)`:

- the text is NFKC-normalised (full-width letters become plain ones), trimmed, and runs of whitespace
  collapse to one space; it must then be 1-100 characters;
- control and format characters (newlines, tabs, zero-width and bidi overrides) and `<` / `>` (HTML
  has no place in a game name shown on pages and overlays) are refused with a message, never stripped,
  so what is stored is what the streamer meant;
- a name, alias or slug of the catalogue (`services/data/games.yaml`, case-insensitive) maps to the
  catalogue's display name and slug, so "cs2" and "Counter-Strike 2" are one game; any other name keeps
  its text and gets a slug made from it (casefolded, letters and digits of any script kept, the rest
  runs of `-`).

The slug is what events carry (`StreamPayload.game`) and what analytics group by.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

CATALOGUE_PATH = Path(__file__).resolve().parent / "data" / "games.yaml"
MAX_LENGTH = 100


class GameError(ValueError):
    """A game name that cannot be stored; the message says why (shown to the streamer as a 422)."""


@dataclass(frozen=True, slots=True)
class Game:
    name: str  # display name: the catalogue's, or the streamer's normalised text
    slug: str  # stable key: lowercase letters/digits (any script) and single dashes


class CatalogueGame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    slug: str = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=MAX_LENGTH)
    name: str = Field(min_length=1, max_length=MAX_LENGTH)
    weight: float = Field(gt=0)
    aliases: tuple[str, ...] = ()


def load_catalogue(path: Path = CATALOGUE_PATH) -> tuple[CatalogueGame, ...]:
    """Parse and validate the catalogue; raises ValueError on a duplicate slug, name or alias."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    games = tuple(CatalogueGame.model_validate(entry) for entry in raw["games"])
    seen: dict[str, str] = {}
    for game in games:
        for key in {game.slug, _key(game.name), *(_key(a) for a in game.aliases)}:
            if seen.setdefault(key, game.slug) != game.slug:
                raise ValueError(f"{key!r} names both {seen[key]!r} and {game.slug!r} in {path.name}")
    return games


@cache
def catalogue() -> tuple[CatalogueGame, ...]:
    return load_catalogue()


@cache
def _lookup() -> dict[str, CatalogueGame]:
    out: dict[str, CatalogueGame] = {}
    for game in catalogue():
        for key in (game.slug, _key(game.name), *(_key(a) for a in game.aliases)):
            out[key] = game
    return out


def _key(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split()).casefold()


def slugify(name: str) -> str:
    """Casefolded letters and digits (any script) joined by single dashes: "Ведьмак 3" -> "ведьмак-3"."""
    return re.sub(r"[\W_]+", "-", name.casefold()).strip("-")


def normalise(text: str) -> Game | None:
    """The game a streamer typed, or None for an empty text (no game). Raises GameError when refused."""
    nfkc = unicodedata.normalize("NFKC", text)
    for char in nfkc:
        if unicodedata.category(char).startswith(("C", "Zl", "Zp")):  # Cc, Cf, Co, Cs, Cn; line breaks
            raise GameError(
                f"game must not contain control or invisible characters (found U+{ord(char):04X})"
            )
    if "<" in nfkc or ">" in nfkc:
        raise GameError("game must not contain '<' or '>' (HTML is not allowed)")
    name = " ".join(nfkc.split())
    if not name:
        return None
    if len(name) > MAX_LENGTH:
        raise GameError(f"game must be at most {MAX_LENGTH} characters, not {len(name)}")
    known = _lookup().get(name.casefold())
    if known is not None:
        return Game(known.name, known.slug)
    slug = slugify(name)
    if not slug:
        raise GameError("game must contain at least one letter or digit")
    return Game(name, slug[:MAX_LENGTH].rstrip("-"))


def display_name(slug: str) -> str:
    """The catalogue's name for a slug, else the slug itself (a free-text game's name is not in events)."""
    known = _lookup().get(slug)
    return known.name if known is not None else slug


def main_games(genre_of: Sequence[int], genres: int, *, seed: int, off_genre: float = 0.2) -> list[str]:
    """Synthetic data only: a fixed main game (slug) per channel, for the generators.

    Catalogue game i belongs to genre i mod `genres` (genres without one get a made-up `game-<g>`); a
    channel plays a game of its genre, picked by the catalogue's weights (a few games hold most
    channels), except a share `off_genre` that plays any game (a streamer's game is not always their
    audience's community). Uses its own random stream, so generators' other draws do not change.
    """
    if not 0 <= off_genre <= 1:
        raise ValueError("off_genre is a probability in [0, 1]")
    rng = np.random.default_rng([seed, 0x6A4E])
    games = catalogue()
    weights = np.array([g.weight for g in games])
    slugs: list[str] = []
    for genre in genre_of:
        members = [i for i in range(len(games)) if i % genres == genre]
        if rng.random() < off_genre:
            slugs.append(games[int(rng.choice(len(games), p=weights / weights.sum()))].slug)
        elif members:
            w = weights[members]
            slugs.append(games[members[int(rng.choice(len(members), p=w / w.sum()))]].slug)
        else:
            slugs.append(f"game-{genre}")
    return slugs
