#include <gtest/gtest.h>

#include "analyze/knowledge.h"

using namespace lazyexec::analyze;

TEST(GlobMatch, ExactAndWildcards) {
  EXPECT_TRUE(glob_match("re.compile", "re.compile"));
  EXPECT_FALSE(glob_match("re.compile", "re.compiler"));
  EXPECT_TRUE(glob_match("typing.*", "typing.Optional"));
  EXPECT_TRUE(glob_match("typing.*", "typing.a.b"));
  EXPECT_FALSE(glob_match("typing.*", "typing_extensions.Optional"));
  EXPECT_TRUE(glob_match("builtins.*Error", "builtins.ValueError"));
  EXPECT_FALSE(glob_match("builtins.*Error", "builtins.ValueErrors"));
  EXPECT_TRUE(glob_match("*.conftest", "pkg.tests.conftest"));
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_FALSE(glob_match("", "x"));
}

TEST(NameSet, ExactAndPatterns) {
  NameSet s;
  s.add("collections.namedtuple");
  s.add("math.*");
  EXPECT_TRUE(s.contains("collections.namedtuple"));
  EXPECT_TRUE(s.contains("math.sqrt"));
  EXPECT_FALSE(s.contains("collections.deque"));
  EXPECT_FALSE(s.contains("mathx.sqrt"));
}

TEST(KnowledgeBase, ImpureReasonMatchesDottedPrefixes) {
  KnowledgeBase kb;
  kb.impure["os.environ"] = "changes";
  ASSERT_NE(kb.impure_reason("os.environ.get"), nullptr);
  EXPECT_EQ(*kb.impure_reason("os.environ"), "changes");
  EXPECT_EQ(kb.impure_reason("os.environment"), nullptr);  // a prefix of segments, not of characters
  EXPECT_EQ(kb.impure_reason("os"), nullptr);
}

TEST(KnowledgeBase, EffectsExplainCallsButNotReads) {
  KnowledgeBase kb;
  kb.impure["sys.argv"] = "rewritten";
  kb.effects["warnings.warn"] = "emits";
  EXPECT_EQ(kb.impure_reason("warnings.warn"), nullptr);  // a read of the function is no impure read
  ASSERT_NE(kb.call_reason("warnings.warn"), nullptr);
  EXPECT_EQ(*kb.call_reason("warnings.warn"), "emits");
  ASSERT_NE(kb.call_reason("sys.argv.copy"), nullptr);    // calling through a changing value
  EXPECT_EQ(*kb.call_reason("sys.argv.copy"), "rewritten");
  EXPECT_EQ(kb.call_reason("warnings.warnx"), nullptr);
}

TEST(KnowledgeBase, NeverLazyCoversSubmodulesOfListedPackages) {
  KnowledgeBase kb;
  kb.never_lazy.add("gevent.monkey");
  kb.never_lazy.add("readline");
  EXPECT_TRUE(kb.module_never_lazy("readline"));
  EXPECT_TRUE(kb.module_never_lazy("gevent.monkey"));
  EXPECT_TRUE(kb.module_never_lazy("gevent.monkey.patch"));
  EXPECT_FALSE(kb.module_never_lazy("gevent"));
  EXPECT_FALSE(kb.module_never_lazy("readlines"));
  kb.never_lazy.add("=importlib");  // the module alone, not its submodules
  EXPECT_TRUE(kb.module_never_lazy("importlib"));
  EXPECT_FALSE(kb.module_never_lazy("importlib.metadata"));
  EXPECT_FALSE(kb.module_never_lazy("importlib.metadata._adapters"));
  EXPECT_FALSE(kb.module_never_lazy("importlib", /*importing=*/true));  // importing it waits for no side effect
  EXPECT_TRUE(kb.module_never_lazy("gevent.monkey", /*importing=*/true));
}
