"""Nothing to save, only overhead: imports 85 stdlib modules and reads every
attribute of each, so every deferred unit runs (bench/startup_overhead.py)."""
import importlib
import sys

NAMES = """abc argparse ast base64 bisect calendar cmd codecs collections colorsys configparser contextlib copy
csv dataclasses datetime decimal difflib dis email.message enum fnmatch fractions ftplib functools getopt gettext glob
gzip hashlib heapq hmac html http.client imaplib inspect io ipaddress json keyword linecache locale logging lzma
mimetypes numbers operator optparse os pathlib pickle pkgutil platform plistlib poplib pprint queue quopri random re
reprlib sched secrets selectors shlex shutil smtplib socket statistics string struct subprocess tarfile tempfile
textwrap threading tokenize traceback types typing urllib.parse uuid warnings weakref zipfile""".split()

attributes = 0
for name in NAMES:
    module = importlib.import_module(name)
    for attr in dir(module):
        getattr(module, attr, None)
        attributes += 1
print(len(NAMES), "modules,", attributes > 5000, len(sys.modules) > 100)
