"""Workload: render a jinja2 template (loops, filters, inheritance)."""
import jinja2

loader = jinja2.DictLoader({
    "base.html": "<title>{% block title %}{% endblock %}</title>\n{% block body %}{% endblock %}\n",
    "page.html": (
        "{% extends 'base.html' %}{% block title %}{{ title | title }}{% endblock %}"
        "{% block body %}<ul>{% for item in items | sort(attribute='name') %}"
        "<li>{{ loop.index }}. {{ item.name | e }}: {{ '%.2f' | format(item.price) }}</li>"
        "{% endfor %}</ul>{% endblock %}"
    ),
})
env = jinja2.Environment(loader=loader, autoescape=True)
items = [{"name": n, "price": p} for n, p in (("pears", 1.5), ("apples <b>", 0.25), ("plums", 3.0))]
print(env.get_template("page.html").render(title="price list", items=items))
