__lazy_module__ = True

import csv
import io
import json
from xml.etree import ElementTree

INDENT = 2
CSV_FIELDS = ["sku", "name", "price", "quantity"]


def as_json(data):
    return json.dumps(data, indent=INDENT, sort_keys=True)


def as_csv(items):
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_FIELDS)
    for i in items:
        w.writerow(list(i))
    return out.getvalue()


def as_xml(items):
    root = ElementTree.Element("items")
    for i in items:
        ElementTree.SubElement(root, "item", sku=i.sku)
    return ElementTree.tostring(root, encoding="unicode")
