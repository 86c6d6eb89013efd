__lazy_module__ = True

import datetime
import logging
import re
from enum import Enum

SKU = re.compile(r"^[A-Z]-\d{3}$")
log = logging.getLogger(__name__)


class Severity(Enum):
    WARNING = 1
    ERROR = 2


RULES = []


def rule(fn):
    RULES.append(fn)
    return fn


@rule
def sku_format(item):
    if not SKU.match(item.sku):
        return Severity.ERROR, f"bad sku {item.sku}"


@rule
def low_stock(item):
    if item.quantity < 5:
        return Severity.WARNING, f"low stock for {item.name} on {datetime.date.today()}"


def check_all(items):
    problems = [p for i in items for r in RULES if (p := r(i))]
    for severity, message in problems:
        log.info("%s: %s", severity.name, message)
    return problems
