"""The gift catalogue: loads and validates, covers every kind and rarity, prices are integer kopecks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services import gifts
from services.gifts import GiftKind, Rarity


def test_catalogue_covers_every_kind_and_rarity() -> None:
    items = gifts.catalogue().values()
    assert {i.kind for i in items} == set(GiftKind)
    assert {i.rarity for i in items} == set(Rarity)
    assert all(isinstance(i.price_minor, int) and i.price_minor > 0 for i in items)


def test_unknown_item_and_bad_quantities_are_refused() -> None:
    with pytest.raises(gifts.UnknownGift, match="'nope' is not in the catalogue"):
        gifts.item("nope")
    heart = gifts.item("heart")
    assert gifts.total_minor(heart, 3) == 3 * heart.price_minor
    for quantity in (0, -1, gifts.MAX_QUANTITY + 1):
        with pytest.raises(ValueError, match="quantity"):
            gifts.total_minor(heart, quantity)


def test_a_bad_catalogue_file_is_refused(tmp_path: Path) -> None:
    dup = tmp_path / "dup.yaml"
    entry = "{id: a, name_en: A, name_ru: А, kind: emote, rarity: common, price_minor: 100}"
    dup.write_text(f"items:\n  - {entry}\n  - {entry}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="appears twice"):
        gifts.load_catalogue(dup)
    fractional = tmp_path / "frac.yaml"
    fractional.write_text(
        "items:\n  - {id: a, name_en: A, name_ru: А, kind: emote, rarity: mythic, price_minor: 10.5}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValidationError):
        gifts.load_catalogue(fractional)
