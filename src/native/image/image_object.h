// The Python face of the application image: `_lazyexec.Image` (a mapped,
// validated image), `_lazyexec.ImageFinder` (the sys.meta_path finder that
// serves modules from it, with no file-system call in the default check
// "none") and `_lazyexec.image_hash`.
#pragma once

#include <Python.h>

namespace lazyexec::image {

// Adds Image, ImageFinder, ImageError and image_hash to the extension
// module; -1 with an exception set.
int add_image_types(PyObject* module);

}  // namespace lazyexec::image
