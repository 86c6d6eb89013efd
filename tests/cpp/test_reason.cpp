#include <gtest/gtest.h>

#include <set>
#include <string>

#include "analyze/reason.h"

using namespace lazyexec::analyze;

TEST(Reason, EveryCodeHasAUniqueShortFormAndASentence) {
  std::set<std::string> seen;
  for (int c = 0; c <= static_cast<int>(Code::OptedOut); ++c) {
    auto code = static_cast<Code>(c);
    std::string s(short_code(code));
    EXPECT_FALSE(s.empty()) << c;
    EXPECT_FALSE(sentence(code).empty()) << s;
    EXPECT_TRUE(seen.insert(s).second) << "duplicate short code " << s;
  }
}

TEST(Reason, TextStartsWithTheVerdict) {
  EXPECT_EQ((Reason{Code::LazyDef, {}}).text().rfind("lazy: ", 0), 0u);
  Reason r{Code::ImpureCall, "calls register() at line 42"};
  EXPECT_EQ(r.text(), "eager: calls register() at line 42");
  EXPECT_TRUE(is_lazy(Code::LazyImport));
  EXPECT_FALSE(is_lazy(Code::ExpressionStatement));
}
