"""Much to save: imports what a typical CLI imports and uses a little of it
(bench/startup_overhead.py, the other end from use_everything.py)."""
import argparse
import dataclasses
import email.message
import http.client
import json
import logging
import pathlib
import subprocess
import tarfile
import typing
import urllib.request
import zipfile

parser = argparse.ArgumentParser(prog="use_little")
parser.add_argument("--n", type=int, default=2)
args = parser.parse_args([])
print(json.dumps({"n": args.n}), pathlib.PurePosixPath("a/b").name)
