"""Every lazyexec run the tests start keeps its caches (usage profiles, the
build queue, artifacts written with byte-code writing off, parse caches) in a
directory of this test session: a profile left by an earlier session for a
reused temporary path must not make a module eager in this one. Set through
XDG_CACHE_HOME, which the harnesses pass on (they drop LAZYEXEC_* variables)."""

import atexit
import os
import shutil
import tempfile

_cache = tempfile.mkdtemp(prefix="lazyexec-tests-cache-")
os.environ["XDG_CACHE_HOME"] = _cache
os.environ.pop("LAZYEXEC_CACHE_DIR", None)
atexit.register(shutil.rmtree, _cache, True)
