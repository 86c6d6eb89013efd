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

// A call of, or a decoration with, another module's callable that may list
// subclasses (KB subclass_listers, from the summaries) runs after the pending
// imports before it, as eagerly; a call of anything else does not.
TEST(Analyzer, StateReaderCallRunsThePendingImportsFirst) {
  KnowledgeBase kb;
  kb.subclass_listers.add("doc.interpd");
  const char* source =
      "import doc\nfrom shapes import Circle\n"
      "class Cell:\n    @doc.interpd\n    def f(self): return Circle\n"
      "@doc.interpd\ndef g(): return Circle\n"
      "@doc.other\ndef h(): return Circle\n";
  auto m = run(source, kb);
  ASSERT_EQ(m.units.size(), 5u);
  EXPECT_TRUE(m.units[2].import_state_at_definition);  // the method's decorator runs with the class body
  EXPECT_TRUE(m.units[3].import_state_at_definition);
  EXPECT_TRUE(m.units[2].lists_subclasses);
  EXPECT_FALSE(m.units[4].touches_import_state);
  ASSERT_FALSE(m.forces.empty());
  EXPECT_EQ(m.forces[0].before, 2);
  EXPECT_EQ(m.forces[0].units, (std::vector<int>{0, 1}));
  for (const auto& f : m.forces) EXPECT_NE(f.before, 4);
  // Without the fact, nothing is forced for the import state.
  auto plain = run(source);
  for (const auto& f : plain.forces) EXPECT_TRUE(std::find(f.units.begin(), f.units.end(), 1) == f.units.end());
}
