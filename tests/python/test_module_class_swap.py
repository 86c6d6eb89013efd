"""lazyexec's module class swaps (runtime/module_hooks.cpp swap_class,
runtime/module_class.py restore_class) change the class of the module they
are given, whatever its own class's __setattr__ does."""

import sys
import types

from lazyexec import _lazyexec
from lazyexec.runtime import module_class


class Forwarding(types.ModuleType):
    # cryptography.utils._ModuleWithDeprecations: a module standing in for
    # another in sys.modules, forwarding every attribute write to it.
    def __init__(self, module):
        super().__init__(module.__name__)
        self.__dict__["_module"] = module

    def __getattr__(self, name):
        return getattr(self._module, name)

    def __setattr__(self, name, value):
        self.__dict__[name] = value
        setattr(self._module, name, value)


def test_a_swap_changes_the_class_of_the_module_given_not_of_the_one_its_setattr_forwards_to():
    # Lazily, cryptography.hazmat.primitives.serialization's wrapper got the
    # submodule miss hook: the class went to the wrapped module, whose
    # attribute reads then ran the wrapper's __getattr__ on it (no _module:
    # RecursionError; aiohttp's freezegun tests, session 23).
    inner = types.ModuleType("wrapped_inner")
    outer = Forwarding(inner)
    assert _lazyexec.swap_class(outer, "submodules", {"__getattr__": lambda self, name: 1})
    assert type(inner) is types.ModuleType
    assert type(outer) is not Forwarding and isinstance(outer, Forwarding)
    assert "__class__" not in outer.__dict__
    module_class.restore_class(outer)
    assert type(inner) is types.ModuleType
    assert isinstance(outer, Forwarding)
    assert sys.modules.get("wrapped_inner") is None
