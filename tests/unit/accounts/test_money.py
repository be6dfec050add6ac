"""Money in integer nano-yuan, and the price list turned into it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from openglm.accounts.metering import PriceBook
from openglm.accounts.money import NANO_PER_YUAN, cost_of, format_yuan, from_nano, to_nano
from openglm.catalog import SEED_PRICES, ModelSpec, Prices
from openglm.serving.usage import Tally

# --- to_nano -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "nano"),
    [
        (0.0005, 500_000),
        ("0.1", 100_000_000),
        (5, 5_000_000_000),
        (Decimal("0.25"), 250_000_000),
        (Decimal("0.000000001"), 1),
        ("0", 0),
        ("-1.5", -1_500_000_000),
        (0.1, 100_000_000),  # the float 0.1 is read as its shortest repr, not 0.1000000000000000055…
        ("1e-7", 100),
    ],
)
def test_to_nano_is_exact(amount: object, nano: int) -> None:
    result = to_nano(amount)  # type: ignore[arg-type]
    assert result == nano
    assert type(result) is int


@pytest.mark.parametrize("amount", ["0.0000000001", Decimal("1.0000000005"), 1e-10])
def test_to_nano_refuses_more_than_nine_decimals(amount: object) -> None:
    with pytest.raises(ValueError, match="more than 9 decimal places"):
        to_nano(amount)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "amount", [float("nan"), float("inf"), float("-inf"), "NaN", "Infinity", Decimal("sNaN"), "abc", "1,5", "", None]
)
def test_to_nano_refuses_what_is_not_money(amount: object) -> None:
    with pytest.raises(ValueError, match="is not an amount of money"):
        to_nano(amount)  # type: ignore[arg-type]


def test_from_nano_round_trips() -> None:
    assert from_nano(to_nano("0.0005")) == Decimal("0.0005")
    assert from_nano(NANO_PER_YUAN) == 1


# --- format_yuan ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("nano", "text"),
    [
        (500, "0.0000005"),
        (12_500_000_000, "12.5"),
        (0, "0"),
        (10 * NANO_PER_YUAN, "10"),
        (100 * NANO_PER_YUAN, "100"),
        (1, "0.000000001"),
        (-500, "-0.0000005"),
        (-12_500_000_000, "-12.5"),
        (-3 * NANO_PER_YUAN, "-3"),
    ],
)
def test_format_yuan_is_plain_decimal(nano: int, text: str) -> None:
    assert format_yuan(nano) == text


# --- cost_of -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "price_per_thousand", "cost"),
    [
        (1000, 100_000_000, 100_000_000),
        (1, 500_000, 500),
        (1, 500, 1),  # 0.5 nano rounds half up
        (3, 500, 2),  # 1.5 → 2
        (1, 499, 0),  # 0.499 → 0
        (1, 1_500, 2),  # 1.5 → 2
        (2, 1_500, 3),  # exactly 3
        (0, 100_000_000, 0),
        (123, 0, 0),
    ],
)
def test_cost_of_rounds_half_up(count: int, price_per_thousand: int, cost: int) -> None:
    assert cost_of(count, price_per_thousand) == cost


# --- PriceBook from the seed prices ------------------------------------------------


def test_glm4_thousand_prompt_tokens_cost_a_tenth_of_a_yuan() -> None:
    book = PriceBook.of(SEED_PRICES["glm-4"])
    cost = book.cost(Tally(prompt_tokens=1000))
    assert cost == to_nano("0.1") == 100_000_000
    assert format_yuan(cost) == "0.1"


def test_glm4_bills_prompt_and_completion() -> None:
    book = PriceBook.of(SEED_PRICES["glm-4"])
    assert book.cost(Tally(prompt_tokens=1000, completion_tokens=500)) == to_nano("0.15")


def test_embedding2_price_is_half_a_thousandth_per_thousand_input_tokens() -> None:
    book = PriceBook.of(SEED_PRICES["embedding-2"])
    assert book == PriceBook(input_per_1k=500_000, output_per_1k=0, per_image=0)
    assert book.cost(Tally(prompt_tokens=1000)) == to_nano("0.0005")
    assert book.cost(Tally(prompt_tokens=1)) == 500
    assert not book.free


def test_cogview3_is_priced_per_image() -> None:
    book = PriceBook.of(SEED_PRICES["cogview-3"])
    assert book.per_image == to_nano("0.25")
    assert book.cost(Tally(prompt_tokens=77, images=2)) == to_nano("0.5")


def test_default_prices_are_free() -> None:
    book = PriceBook.of(Prices())
    assert book.free
    assert book.cost(Tally(prompt_tokens=10_000, completion_tokens=10_000, images=3)) == 0


# --- ModelSpec.effective_prices ------------------------------------------------------


def test_explicit_prices_win_over_seed() -> None:
    own = Prices(input=Decimal("0.02"), output=Decimal("0.03"))
    spec = ModelSpec(id="glm-4", source="x.gguf", prices=own)
    assert spec.effective_prices() == own


def test_explicit_zero_prices_make_a_seeded_name_free() -> None:
    spec = ModelSpec(id="glm-4", source="x.gguf", prices=Prices())
    assert PriceBook.of(spec.effective_prices()).free


def test_seed_price_by_id() -> None:
    spec = ModelSpec(id="glm-3-turbo", source="x.gguf")
    assert spec.effective_prices() == SEED_PRICES["glm-3-turbo"]


def test_seed_price_by_alias() -> None:
    spec = ModelSpec(id="glm-4-9b-chat-q4", aliases=["chat", "glm-4"], source="x.gguf")
    assert spec.effective_prices() == SEED_PRICES["glm-4"]


def test_unknown_name_is_free() -> None:
    spec = ModelSpec(id="my-local-model", aliases=["mine"], source="x.gguf")
    assert spec.effective_prices() == Prices()
    assert PriceBook.of(spec.effective_prices()).free
