// A TOML reader for activation: a configuration file read without tomllib,
// which with what it imports (datetime, re, string, typing) costs more than
// all the rest of a first start's activation (docs/startup.md).
#pragma once

#include <Python.h>

#include <string_view>

#include "py/handle.h"

namespace lazyexec::importer {

// The document as tomllib.loads() returns it (dicts, lists, str, int,
// float, bool), or an empty Ref with no exception set when this reader
// declines: anything it does not accept exactly as tomllib does (dates and
// times, integers beyond 64 bits, a table defined in a way whose validity
// depends on rules it does not model, invalid TOML), so that the caller
// hands the file to tomllib, which parses it or says what is wrong. Throws
// py::PyError on a Python error (memory).
py::Ref parse_toml(std::string_view text);

}  // namespace lazyexec::importer
