// The Python face of the application image: `_lazyexec.Image` (a mapped,
// validated image), `_lazyexec.ImageFinder` (the sys.meta_path finder that
// serves modules from it, with no file-system call in the default check
// "none") and `_lazyexec.image_hash`.
#pragma once

#include <Python.h>

#include <cstdint>
#include <vector>

namespace lazyexec::image {

// A plan's units as an image holds them (format 6): their code fields (a
// list, one per unit, as a plan's units[i][0]) and the unit table copied
// from the mapping, checked by the reader: every unit's `where` and bound
// names NUL-terminated in `text`, its deps then calls in `links` (each a
// unit index). The runtime's install() takes it in place of the units list.
struct UnitTable {
  struct Unit {
    uint32_t where_at, binds_at, nbinds, links_at, ndeps, ncalls;
  };
  PyObject* codes;  // borrowed: a list of len(units)
  const std::vector<Unit>* units;
  const std::vector<char>* text;
  const std::vector<int>* links;
};
// The table of `obj` when it is one (an ImageUnits object), else false.
bool unit_table(PyObject* obj, UnitTable* out);

// Adds Image, ImageFinder, ImageError and image_hash to the extension
// module; -1 with an exception set.
int add_image_types(PyObject* module);

// lazyexec.image.activate(path) done in C++ for the boot (importer/boot.cpp,
// LAZYEXEC_IMAGE), with no Python module of lazyexec's, in two steps so that
// the boot can decline before it changes anything:
//
// boot_open_image: the image mapped and validated against this interpreter
// and runtime (`extension` is the _lazyexec module: its file is part of the
// runtime key), the -O level and LAZYEXEC_IMAGE_CHECK. Returns the Image
// (new reference); Py_None when the Python layer must activate instead and
// say why (a damaged, truncated, foreign or missing image, another -O level,
// a bad LAZYEXEC_IMAGE_CHECK); nullptr with an exception set on an error.
PyObject* boot_open_image(PyObject* extension, PyObject* path);

// boot_install_image: its ImageFinder placed ahead of PathFinder and
// lazyexec's Finder (and of BuiltinImporter and FrozenImporter right before
// them), as lazyexec.image.activate() places it: call it after the boot's
// Finder is on sys.meta_path. `whole`: the usage profile's modules used
// whole (a set, the profile's {module: expiry}, or None); plans run with
// the settle policy given. Returns the finder (new reference), or nullptr
// with an exception set.
PyObject* boot_install_image(PyObject* image, PyObject* whole, long settle_threshold, bool settle_now,
                             PyObject* watchers);

// Both steps (_lazyexec.image_boot).
PyObject* boot_image(PyObject* extension, PyObject* path, PyObject* whole, long settle_threshold, bool settle_now);

}  // namespace lazyexec::image
