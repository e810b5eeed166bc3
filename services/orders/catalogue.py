"""What the shop sells and at what price, in which currencies: the shop's own data. A client orders SKUs and
quantities; the price is the catalogue's, never the client's (before, the client set unit_price_cents: 0 cents
bought anything, and any three letters were charged as a currency). GET /catalogue (public, through the gateway as
/api/catalogue) lists it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Currencies the shop charges in (ISO 4217); every product has a price in each.
CURRENCIES: tuple[str, ...] = ("EUR", "USD", "GBP")


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    prices: dict[str, int]  # currency -> cents

    def view(self) -> dict[str, Any]:
        return {"sku": self.sku, "name": self.name, "prices": dict(self.prices)}


def _product(sku: str, name: str, eur: int, usd: int, gbp: int) -> Product:
    return Product(sku, name, {"EUR": eur, "USD": usd, "GBP": gbp})


PRODUCTS: tuple[Product, ...] = (
    _product("book-42", "The Hitchhiker's Guide to Resilience", 1250, 1350, 1090),
    _product("chaos-engineering-book", "Chaos Engineering", 3900, 4200, 3400),
    _product("sticker", "chaoslab sticker", 150, 160, 130),
    _product("SKU-TEA", "Loose-leaf tea", 450, 490, 390),
    _product("SKU-MUG", "Mug", 1290, 1390, 1120),
    _product("SKU-BEANS", "Coffee beans", 1590, 1720, 1380),
    _product("SKU-GRINDER", "Coffee grinder", 5900, 6390, 5150),
    _product("SKU-FILTER", "Paper filters", 320, 350, 280),
)
BY_SKU: dict[str, Product] = {p.sku: p for p in PRODUCTS}
SKUS: tuple[str, ...] = tuple(BY_SKU)


def price(sku: str, currency: str) -> int:
    """The catalogue's price of one `sku` in `currency`, in cents (KeyError when there is none)."""
    return BY_SKU[sku].prices[currency]


def view() -> dict[str, Any]:
    return {"currencies": list(CURRENCIES), "items": [p.view() for p in PRODUCTS]}
