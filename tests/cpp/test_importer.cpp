// The import room's pure parts: the policy matcher, the marker scan, and the
// artifact reader on damaged input (the interpreter is set up by
// test_analyzer.cpp's global environment: decode unmarshals).
#include <Python.h>
#include <gtest/gtest.h>
#include <marshal.h>

#include <optional>
#include <string>

#include "image/blob_hash.h"
#include "importer/artifact.h"
#include "importer/policy.h"

using namespace lazyexec;
using namespace lazyexec::importer;

TEST(Policy, NeverCoversPackagesIncludeExcludeAndProfile) {
  Policy p;
  p.never.add("importlib");
  p.never.add("_pytest.config");
  p.exclude.add("app.plugins.*");
  p.eager.insert("app.used_whole");
  EXPECT_FALSE(p.selects("importlib"));
  EXPECT_FALSE(p.selects("importlib.metadata"));  // below a never-lazy package
  EXPECT_TRUE(p.selects("importlibx"));           // a prefix of segments, not of characters
  EXPECT_FALSE(p.selects("_pytest.config.argparsing"));
  EXPECT_TRUE(p.selects("_pytest.python"));
  EXPECT_FALSE(p.selects("app.plugins.x"));
  EXPECT_FALSE(p.selects("app.used_whole"));
  EXPECT_TRUE(p.selects("app.core"));
  p.include.add("app.*");
  EXPECT_FALSE(p.selects("json"));
  EXPECT_TRUE(p.selects("app.core"));
}

TEST(Marker, TopLevelTrueOnly) {
  EXPECT_TRUE(has_marker("__lazy_module__ = True\n"));
  EXPECT_TRUE(has_marker("import os\n__lazy_module__: bool = True  # opt in\n"));
  EXPECT_TRUE(has_marker("x = 1\r\n__lazy_module__=True\r\n"));
  EXPECT_FALSE(has_marker("__lazy_module__ = False\n"));
  EXPECT_FALSE(has_marker("    __lazy_module__ = True\n"));  // not top level
  EXPECT_FALSE(has_marker("__lazy_module__ == True\n"));
  EXPECT_FALSE(has_marker("__lazy_module__x = True\n"));
  EXPECT_FALSE(has_marker("s = '__lazy_module__ = True'\n"));
  EXPECT_TRUE(has_pep810_list("import os\n__lazy_modules__ = ['json']\n"));
  EXPECT_FALSE(has_pep810_list("x = '__lazy_modules__'\n"));
  // opts_in: either, in one pass, with the same rules.
  EXPECT_TRUE(opts_in("import os\n__lazy_modules__ = ['json']\n"));
  EXPECT_TRUE(opts_in("x = 1\r\n__lazy_module__=True\r\n"));
  EXPECT_TRUE(opts_in("__lazy_module__ = False\n__lazy_module__ = True\n"));
  EXPECT_FALSE(opts_in("__lazy_module__ = False\n"));
  EXPECT_FALSE(opts_in("    __lazy_module__ = True\n    __lazy_modules__ = []\n"));
  EXPECT_FALSE(opts_in("s = '__lazy_module__ = True'; t = '__lazy_modules__'\n"));
  EXPECT_FALSE(opts_in("__lazy_module"));
  EXPECT_FALSE(opts_in(""));
}

namespace {

// An artifact: the header (format 7 here, flags 0), its check of `body`
// (blob_hash, or `check` when given), then `body`.
std::string artifact(uint64_t mtime, uint64_t size, const std::string& key, const std::string& body,
                     const char* magic = "LZEX", std::optional<uint64_t> check = std::nullopt) {
  std::string h(magic, 4);
  h += std::string("\x07\x00\x00\x00", 4);
  h += "PYMG";
  for (int i = 0; i < 8; ++i) h += (char)((mtime >> (8 * i)) & 0xff);
  for (int i = 0; i < 8; ++i) h += (char)((size >> (8 * i)) & 0xff);
  h += key;
  uint64_t c = check ? *check : lazyexec::image::blob_hash(body);
  for (int i = 0; i < 8; ++i) h += (char)((c >> (8 * i)) & 0xff);
  return h + body;
}

py::Ref eval(const char* expression) {
  py::Ref globals = py::check(PyDict_New());
  return py::check(PyRun_String(expression, Py_eval_input, globals.get(), globals.get()));
}

std::string payload(PyObject* obj) {
  py::Ref bytes = py::Ref::steal(PyMarshal_WriteObjectToString(obj, Py_MARSHAL_VERSION));
  return std::string(PyBytes_AS_STRING(bytes.get()), (size_t)PyBytes_GET_SIZE(bytes.get()));
}

}  // namespace

TEST(Artifact, ValidStaleAndDamaged) {
  const std::string key = "0123456789abcdef";
  Expected want{7, "PYMG", 42, 7, key};
  py::Ref plan = eval("([(None, ('f',), (), '1 (def f)', ())], [('run', None, 0)])");
  std::string body = payload(plan.get());
  std::string good = artifact(42, 7, key, body);
  EXPECT_EQ(decode(good, want).verdict, Verdict::Plan);
  EXPECT_EQ(decode(artifact(43, 7, key, body), want).verdict, Verdict::Stale);  // source changed
  EXPECT_EQ(decode(artifact(42, 7, "fedcba9876543210", body), want).verdict, Verdict::Stale);
  EXPECT_EQ(decode(good.substr(0, 20), want).verdict, Verdict::Corrupt);  // truncated header
  EXPECT_EQ(decode(artifact(42, 7, key, body, "XXXX"), want).verdict, Verdict::Corrupt);
  for (size_t cut = kHeaderSize; cut < good.size(); cut += 3)  // every truncation of the payload: corrupt, never a crash
    EXPECT_NE(decode(good.substr(0, cut), want).verdict, Verdict::Plan) << cut;
  py::Ref wrong = eval("([1], [])");
  EXPECT_EQ(decode(artifact(42, 7, key, payload(wrong.get())), want).verdict, Verdict::Corrupt);  // bad unit
  py::Ref step = eval("([], [('explode', None, 0)])");
  EXPECT_EQ(decode(artifact(42, 7, key, payload(step.get())), want).verdict, Verdict::Corrupt);  // unknown step
  EXPECT_FALSE(PyErr_Occurred());
}

// marshal reads a damaged code object without a word and the interpreter then
// runs it: every single-bit flip after the header, and a stored check that
// does not match, must be refused before the payload is read.
TEST(Artifact, EveryBitFlipAfterTheHeaderIsRefusedByTheCheck) {
  const std::string key = "0123456789abcdef";
  Expected want{7, "PYMG", 42, 7, key};
  py::Ref plan = eval("([(compile('x = 1', 'm', 'exec'), ('x',), (), '1 (assign x)', ())], [('run', None, 0)])");
  std::string good = artifact(42, 7, key, payload(plan.get()) + "trailer");
  ASSERT_EQ(decode(good, want).verdict, Verdict::Plan);
  for (size_t at = kHeaderSize; at < good.size(); ++at)
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[at] = (char)(bad[at] ^ (1 << bit));
      Decoded d = decode(bad, want);
      ASSERT_EQ(d.verdict, Verdict::Corrupt) << at << ":" << bit;
      ASSERT_STREQ(d.problem, "checksum mismatch");
    }
  std::string body = payload(plan.get());
  EXPECT_EQ(decode(artifact(42, 7, key, body, "LZEX", lazyexec::image::blob_hash(body) ^ 1), want).verdict,
            Verdict::Corrupt);
  EXPECT_FALSE(PyErr_Occurred());
}
