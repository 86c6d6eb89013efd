"""The inventory application's package."""

__lazy_module__ = True
