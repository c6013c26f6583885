"""Masking personal data in what customers write."""

from __future__ import annotations

import polars as pl
import pytest

from segmenter import privacy
from segmenter.privacy import mask, mask_expr, mask_frame


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # e-mail addresses
        ("mail me at john.doe@example.com please", "mail me at [email] please"),
        ("shopper123@example.com", "[email]"),
        ("a.b-c+tag@mail.co.uk.", "[email]."),
        ("Contact: Jane_Smith99@shop-online.de, thanks", "Contact: [email], thanks"),
        # phone numbers in several formats
        ("call +44 20 7946 0958 today", "call [phone] today"),
        ("(555) 123-4567", "[phone]"),
        ("555-123-4567", "[phone]"),
        ("555.123.4567", "[phone]"),
        ("0171 234 5678", "[phone]"),
        ("07700 900123", "[phone]"),
        ("+86 138-1234-5678", "[phone]"),
        ("+1 (555) 123 4567", "[phone]"),
        # long digit runs (card, account, order numbers)
        ("card 4111111111111111", "card [number]"),
        ("postcode 10115", "postcode [number]"),
        ("order 20210503", "order [number]"),
        # Chinese text: only the personal part goes, the words around it stay
        ("联系我：13812345678，谢谢", "联系我：[number]，谢谢"),
        ("电话：138 1234 5678，晚上打", "电话：[phone]，晚上打"),
        ("邮箱test@example.com谢谢", "邮箱[email]谢谢"),
        ("请拨打+86 138-1234-5678联系我", "请拨打[phone]联系我"),
        ("全角号码１３８１２３４５６７８", "全角号码[number]"),
    ],
)
def test_masks_personal_data(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 1234 arrived",
        "3 for 2, 10.50 each",
        "delivered 2021-05-03",
        "delivered 2021-05-03 12:30",
        "on 2021/5/3 at 9:15",
        "bought 03.05.2021 10:15, returned 05.05.2021",
        "2021-05-03 2021-06-04",
        "日期2021-05-03 12:30送达",
        "2021年5月3日 12:30 到货",
        "size EU 42 / UK 8, 32x34 jeans",
        "42x30x15cm box, 250ml, 1920x1080 screen, 3.5 inch",
        "version 1.2.3, 12 pack, 100% cotton",
        "质量很好，尺码合适，推荐购买！",
        "",
    ],
)
def test_leaves_dates_short_numbers_and_sizes(text: str) -> None:
    assert mask(text) == text


def test_date_next_to_a_phone_number_masks_only_the_phone() -> None:
    assert mask("on 2021-05-03, call 555-123-4567") == "on 2021-05-03, call [phone]"
    assert mask("2021-05-03 13812345678") == "2021-05-03 [number]"


def test_expression_matches_function_and_is_idempotent() -> None:
    texts = [
        "mail me at john.doe@example.com",
        "call +44 20 7946 0958",
        "delivered 2021-05-03 12:30",
        "联系我：13812345678",
        None,
    ]
    masked = pl.DataFrame({"t": texts}).select(mask_expr(pl.col("t")))["t"].to_list()
    assert masked == [None if t is None else mask(t) for t in texts]
    assert [None if t is None else mask(t) for t in masked] == masked


def test_short_and_long_columns_are_masked_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """Few distinct values go through Python's re, many through polars: the same result, and a
    character Python's Unicode database does not know falls back to polars."""
    values = [
        "mail me at john.doe@example.com",
        "call +44 20 7946 0958",
        "delivered 2021-05-03 12:30",
        "联系我：13812345678",
        "size 42, pack of 3",
        "\U000e0fff 1234567",  # unassigned code point next to digits
        None,
    ]
    frame = pl.DataFrame({"item_name": values, "user_id": [str(i) for i in range(len(values))]})
    expected = [None if v is None else mask(v) for v in values]
    for below in (0, 1_000):
        monkeypatch.setattr(privacy, "PYTHON_BELOW", below)
        out = mask_frame(frame, ["item_name", "missing"])
        assert out["item_name"].to_list() == expected
        assert out["user_id"].to_list() == frame["user_id"].to_list()
        assert privacy.mask_values(frame["item_name"]).to_list() == expected  # nulls kept
