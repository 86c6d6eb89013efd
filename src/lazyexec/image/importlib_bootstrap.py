"""The image's loader class: a SourceFileLoader (get_source, get_data,
importlib.resources, linecache and tracebacks read the source file as usual)
whose create_module, get_code and exec_module are C++
(src/native/image/image_object.cpp), installed on it by the ImageFinder: a
module served from the image runs no Python frame of lazyexec's on its way
in. (The file name holds "importlib" and "_bootstrap" on purpose, as
lazyexec/importer/importlib_bootstrap.py: warnings' stacklevel skips it.)
"""

import sys

_external = sys.modules["_frozen_importlib_external"]


class ImageLoader(_external.SourceFileLoader):
    image = None  # the Image (set on the per-activation subclass)
    config = None
    _finder = None  # the ImageFinder that installed the C++ methods

    # Equal to the SourceFileLoader an eager import would have used (specs
    # compare as eagerly), like lazyexec's LazySourceLoader.
    def __eq__(self, other):
        if isinstance(other, _external.SourceFileLoader):
            return self.__dict__ == other.__dict__
        return NotImplemented

    __hash__ = _external.SourceFileLoader.__hash__


def make_runner(config):
    """(run_plan, Plan, settle): what the C++ loader calls a lazy module's
    plan with, looked up once, at the first plan module (a program whose
    served modules are all eager never imports the lazy loader)."""
    from lazyexec.importer.importlib_bootstrap import run_plan
    from lazyexec.runtime import settle_policy
    from lazyexec.store import Plan

    return run_plan, Plan, settle_policy(config)
