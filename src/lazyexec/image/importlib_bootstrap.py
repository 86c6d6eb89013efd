"""The image's loader: the frames between importlib and a module served from
the image. (The file name holds "importlib" and "_bootstrap" on purpose, as
lazyexec/importer/importlib_bootstrap.py: warnings' stacklevel skips it.)

An eager module's code object comes from the image through `get_code`, so
importlib's own `exec_module` runs it exactly as it runs a `.pyc`. A lazy
module's plan goes to the plan runner (`run_plan`), the one call into the
lazy loader kept in one place here.
"""

import sys

from lazyexec import _lazyexec

_external = sys.modules["_frozen_importlib_external"]


class ImageLoader(_external.SourceFileLoader):
    image = None  # the Image (set on the per-activation subclass)
    config = None
    _settle = None

    # Equal to the SourceFileLoader an eager import would have used (specs
    # compare as eagerly), like lazyexec's LazySourceLoader.
    def __eq__(self, other):
        if isinstance(other, _external.SourceFileLoader):
            return self.__dict__ == other.__dict__
        return NotImplemented

    __hash__ = _external.SourceFileLoader.__hash__

    def get_code(self, fullname):
        record = self.image.find(fullname)
        if record is not None and not record[4]:
            try:
                return self.image.load(fullname)
            except _lazyexec.ImageError as e:
                _damaged(e)
        return super().get_code(fullname)  # a plan's module (runpy), or a damaged payload: the source

    def exec_module(self, module):
        name = module.__name__
        record = self.image.find(name)
        if record is None or not record[4]:
            return super().exec_module(module)  # eager: get_code above, run by importlib as a .pyc
        try:
            units, steps = self.image.load(name)
        except _lazyexec.ImageError as e:
            _damaged(e)
            return _external.SourceFileLoader.exec_module(self, module)
        run_plan(module, units, steps, self.config, type(self))


def run_plan(module, units, steps, config, owner) -> None:
    """The plan runner of lazy loading (lazyexec.importer.importlib_bootstrap),
    called with the plan the store's format holds."""
    from lazyexec.importer import importlib_bootstrap as lazy
    from lazyexec.runtime import settle_policy
    from lazyexec.store import Plan

    if owner._settle is None:
        owner._settle = settle_policy(config)
    lazy.run_plan(module, Plan(units, steps), config, owner._settle)


def _damaged(error) -> None:
    import warnings

    warnings.warn(f"lazyexec: {error}; importing it from its source", RuntimeWarning, stacklevel=3)
