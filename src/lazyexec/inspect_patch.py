"""inspect's patch point for lazily loaded modules (runtime/eager_modules.py
says why): `inspect.getmodule` finds the modules deferred imports would
have loaded, and `inspect.getattr_static` a lazy module's pending names.

The C++ runtime installs it when inspect loads after the first lazy module
(hook_getmodule in src/native/runtime/module_hooks.cpp). It lives outside
`lazyexec.runtime` so that installing it imports one small module: through
`lazyexec.runtime.eager_modules` a warm start that loads inspect (flake8
--version) imported `lazyexec.runtime` and its `module_class` too, about
1 M instructions of imports for a patch whose wrappers need the closure
computation only on a miss (imported then).
"""

import sys


def _wrap(getmodule):
    import functools

    if getattr(getmodule, "_lazyexec_eager_modules", False):
        return getmodule

    @functools.wraps(getmodule)
    def wrapper(object, _filename=None):
        module = getmodule(object, _filename)
        if module is not None:
            return module
        try:
            name = object.__module__
        except Exception:  # noqa: BLE001 - as getmodule's own hasattr(): no name, nothing to add
            return None
        if not isinstance(name, str) or name in sys.modules:
            return None
        from lazyexec.runtime.eager_modules import would_be_loaded

        if not would_be_loaded(name):
            return None
        import importlib

        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an import that fails eagerly too: getmodule finds nothing
            return None
        return getmodule(object, _filename)

    wrapper._lazyexec_eager_modules = True
    return wrapper


def _wrap_check_instance(check_instance):
    """inspect.getattr_static reads an object's own attribute with the
    unbound `dict.get(obj.__dict__, attr)`, which a lazy module's trapping
    namespace (LazyGlobals, a dict subclass) cannot see: a name whose unit
    has not run was missing where eagerly it is there (pluggy 1.7 finds
    hooks that way). The name's own unit runs first, as
    `globals().get(name)` runs it; nothing else does."""

    def _check_instance(obj, attr):
        try:
            namespace = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            pass
        else:
            kind = type(namespace)
            if kind is not dict and kind.__name__ == "LazyGlobals" and kind.__module__ == "lazyexec":
                namespace.get(attr)
        return check_instance(obj, attr)

    _check_instance.__wrapped__ = check_instance
    _check_instance.__doc__ = check_instance.__doc__
    _check_instance._lazyexec_static_lookup = True
    return _check_instance


def patch(module) -> None:
    try:
        module.getmodule = _wrap(module.getmodule)
    except AttributeError:
        pass  # an inspect we do not know
    try:
        current = module._check_instance
        if not getattr(current, "_lazyexec_static_lookup", False):
            module._check_instance = _wrap_check_instance(current)
    except AttributeError:
        pass  # an inspect without it: getattr_static is its own
