"""The emote catalogue, its name and URL rules, and message tokenising (pure, no node)."""

from __future__ import annotations

import pytest

from services.chat.emotes import (
    Catalogue,
    ContentError,
    Emote,
    Kind,
    check_code,
    check_url,
    global_catalogue,
    is_emote_only,
    tokenise,
)


def _catalogue() -> Catalogue:
    return Catalogue.with_channel(
        [
            Emote("Pog", "https://cdn.example/pog.png", 0, Kind.EMOTE, "channel"),
            Emote("gold", "https://cdn.example/gold.png", 3, Kind.EMOTE, "channel"),
            Emote("wave", "https://evil.example/wave.png", 0, Kind.EMOTE, "channel"),  # cannot shadow
            Emote("cake", "https://cdn.example/cake.png", 1, Kind.STICKER, "channel"),
        ]
    )


def test_the_global_catalogue_is_valid_data() -> None:
    emotes, stickers = global_catalogue()
    assert {"wave", "heart", "crown"} <= set(emotes) and {"party", "trophy"} <= set(stickers)
    assert all(e.url.startswith("/chat/emotes/") for e in [*emotes.values(), *stickers.values()])
    assert emotes["crown"].min_tier == 1 and stickers["trophy"].min_tier == 2


def test_tokenise_splits_text_and_emotes_and_leaves_unknown_codes_as_text() -> None:
    tokens = tokenise(":wave:hi :Pog::pog: a:b: :x:", _catalogue(), 0)
    assert tokens == [
        {"t": "emote", "code": "wave", "url": "/chat/emotes/wave.svg"},  # the global one wins
        {"t": "text", "v": "hi "},
        {"t": "emote", "code": "Pog", "url": "https://cdn.example/pog.png"},
        {"t": "text", "v": ":pog: a:b: :x:"},  # codes are case-sensitive; unknown ones are text
    ]
    assert tokenise("plain", _catalogue(), 0) == [{"t": "text", "v": "plain"}]


def test_a_locked_emote_refuses_the_message_with_the_tier_needed() -> None:
    with pytest.raises(ContentError) as refused:
        tokenise(":crown: and :gold:", _catalogue(), 0)
    assert refused.value.code == "emote_locked" and refused.value.extra["min_tier"] == 3
    assert ":crown:" in refused.value.detail and ":gold:" in refused.value.detail
    assert [t["t"] for t in tokenise(":crown: and :gold:", _catalogue(), 3)] == ["emote", "text", "emote"]


def test_stickers_by_id_and_tier() -> None:
    cat = _catalogue()
    assert cat.sticker("cake", 1).url == "https://cdn.example/cake.png"
    for code, tier, error in [
        ("cake", 0, "sticker_locked"),
        ("nope", 3, "unknown_sticker"),
        ("<b>", 3, "bad_emote_name"),
        ("y" * 33, 3, "bad_emote_name"),
    ]:
        with pytest.raises(ContentError) as refused:
            cat.sticker(code, tier)
        assert refused.value.code == error


def test_emote_only_means_catalogue_emotes_and_emoji() -> None:
    cat = _catalogue()
    assert is_emote_only(tokenise(":wave: 🎉 :Pog:", cat, 0))
    assert not is_emote_only(tokenise(":kappa:", cat, 0))  # not in the catalogue
    assert not is_emote_only(tokenise(":wave: hi", cat, 0))
    assert not is_emote_only(tokenise("   ", cat, 0))


@pytest.mark.parametrize("code", ["ok", "Pog_Champ2", "x" * 32])
def test_good_names(code: str) -> None:
    assert check_code(code) == code


@pytest.mark.parametrize("code", ["a", "x" * 33, "<script>", "a b", "wave:", "émote", "", "a\u200bb", "../x"])
def test_bad_names(code: str) -> None:
    with pytest.raises(ContentError) as refused:
        check_code(code)
    assert refused.value.code == "bad_emote_name"


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example/e/pog.png",
        "https://cdn.example:8443/a/b-c_d.webp?v=2",
        "/chat/emotes/wave.svg",
    ],
)
def test_good_urls(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:image/svg+xml,<svg onload=alert(1)>",
        "http://cdn.example/x.png",
        'https://cdn.example/x.png"onerror="alert(1)',
        "https://cdn.example/<x>.png",
        "https://cdn.example",
        "//cdn.example/x.png",
        "/chat/emotes/../secret.svg",
        "/chat/emotes/x.html",
        "https://cdn.example/" + "a" * 300,
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ContentError) as refused:
        check_url(url)
    assert refused.value.code == "bad_emote_url"
