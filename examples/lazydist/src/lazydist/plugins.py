"""Registers itself when imported: declared `never` in the distribution's
metadata, so it is never lazy even though the distribution opted in."""

REGISTRY = []


def plugin(name):
    REGISTRY.append(name)
    return name


plugin("builtin-shapes")
