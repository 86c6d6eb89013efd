__lazy_module__ = True

import statistics
from collections import namedtuple
from dataclasses import dataclass, field

Item = namedtuple("Item", "sku name price quantity")

DEFAULT_ITEMS = (
    ("A-100", "bolt", 0.25, 1200),
    ("A-200", "nut", 0.1, 3000),
    ("B-310", "bracket", 4.5, 40),
    ("C-999", "motor", 129.0, 3),
)


@dataclass
class Warehouse:
    name: str
    items: list = field(default_factory=list)


def load_items():
    return [Item(*row) for row in DEFAULT_ITEMS]


def summary(items):
    prices = [i.price for i in items]
    return {
        "items": len(items),
        "units": sum(i.quantity for i in items),
        "median_price": statistics.median(prices),
        "value": round(sum(i.price * i.quantity for i in items), 2),
    }
