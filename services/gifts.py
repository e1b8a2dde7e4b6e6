"""The virtual-gift catalogue: emotes, animations, sounds and game items with rarity and a RUB price.

The catalogue is data (`services/data/gift_catalogue.yaml`), validated once at load: unique ids,
known kinds and rarities, positive integer prices in kopecks. Sending gifts costs `price * quantity`,
a plain integer product, so no rounding is ever involved.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from services.money import Currency

CATALOGUE_PATH = Path(__file__).resolve().parent / "data" / "gift_catalogue.yaml"
GIFT_CURRENCY = Currency.RUB
MAX_QUANTITY = 100  # one purchase sends at most this many of an item


class GiftKind(StrEnum):
    EMOTE = "emote"
    ANIMATION = "animation"
    SOUND = "sound"
    GAME_ITEM = "game_item"


class Rarity(StrEnum):
    COMMON = "common"
    RARE = "rare"
    EPIC = "epic"
    LEGENDARY = "legendary"


class GiftItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    name_en: str = Field(min_length=1, max_length=80)
    name_ru: str = Field(min_length=1, max_length=80)
    kind: GiftKind
    rarity: Rarity
    price_minor: StrictInt = Field(gt=0)
    currency: Currency = GIFT_CURRENCY


class UnknownGift(LookupError):
    pass


def load_catalogue(path: Path = CATALOGUE_PATH) -> dict[str, GiftItem]:
    """Parse and validate a catalogue file; raises ValueError on duplicates or bad entries."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    items = [GiftItem.model_validate(entry) for entry in raw["items"]]
    catalogue: dict[str, GiftItem] = {}
    for item in items:
        if item.id in catalogue:
            raise ValueError(f"gift id {item.id!r} appears twice in {path.name}")
        catalogue[item.id] = item
    return catalogue


@cache
def catalogue() -> dict[str, GiftItem]:
    return load_catalogue()


def item(item_id: str) -> GiftItem:
    found = catalogue().get(item_id)
    if found is None:
        raise UnknownGift(f"gift {item_id!r} is not in the catalogue")
    return found


def total_minor(gift: GiftItem, quantity: int) -> int:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise ValueError(f"quantity must be between 1 and {MAX_QUANTITY}")
    return gift.price_minor * quantity
