// The analyzer end to end inside an embedded interpreter.
#include <gtest/gtest.h>

#include "analyze/analyzer.h"
#include "py/handle.h"

using namespace lazyexec;
using namespace lazyexec::analyze;

namespace {

class Interpreter : public ::testing::Environment {
 public:
  void SetUp() override { Py_Initialize(); }
  void TearDown() override { Py_Finalize(); }
};
const auto* env = ::testing::AddGlobalTestEnvironment(new Interpreter);

ModuleAnalysis run(const char* source, const KnowledgeBase& kb = {}, ModuleInfo info = {}) {
  py::Ref src = py::check(PyBytes_FromString(source));
  py::Ref name = py::str("<test>");
  return analyze::analyze(src.get(), name.get(), kb, info);
}

}  // namespace

TEST(Analyzer, SplitsAndDecides) {
  KnowledgeBase kb;
  kb.pure.add("re.compile");
  auto m = run("import re\nP = re.compile('x')\nprint(P)\ndef f(): return P\n", kb);
  ASSERT_EQ(m.units.size(), 4u);
  EXPECT_TRUE(m.units[0].lazy);
  EXPECT_TRUE(m.units[1].lazy);
  EXPECT_EQ(m.units[1].def_reads, (Names{"re"}));
  EXPECT_FALSE(m.units[2].lazy);
  EXPECT_EQ(m.units[2].reason.code, Code::ExpressionStatement);
  EXPECT_TRUE(m.units[3].lazy);
  EXPECT_EQ(m.units[3].call_reads, (Names{"P"}));
}

TEST(Analyzer, UnknownCallIsEagerWithALineInTheReason) {
  auto m = run("import lib\nX = lib.make()\n");
  ASSERT_EQ(m.units.size(), 2u);
  EXPECT_FALSE(m.units[1].lazy);
  EXPECT_EQ(m.units[1].reason.code, Code::ImpureCall);
  EXPECT_NE(m.units[1].reason.text().find("line 2"), std::string::npos);
}

TEST(Analyzer, GlobalWritesComeFromTheSymtable) {
  auto m = run("def f():\n    global G\n    G = 1\n    return H\n");
  ASSERT_EQ(m.units.size(), 1u);
  EXPECT_EQ(m.units[0].global_writes, (Names{"G"}));
  EXPECT_EQ(m.units[0].call_reads, (Names{"H"}));
}

TEST(Analyzer, SyntaxErrorRaisesThePythonException) {
  EXPECT_THROW(run("x = (\n"), py::PyError);
  ASSERT_TRUE(PyErr_ExceptionMatches(PyExc_SyntaxError));
  PyErr_Clear();
}

TEST(Analyzer, NeverLazyModuleMakesEverythingEager) {
  KnowledgeBase kb;
  kb.never_lazy.add("plugins.*");
  auto m = run("def f(): pass\n", kb, ModuleInfo{"plugins.x", false});
  EXPECT_TRUE(m.module_eager);
  EXPECT_FALSE(m.units[0].lazy);
}
