// Rule 4 as a pure function over unit facts: no interpreter needed.
#include <gtest/gtest.h>

#include "analyze/stable_inputs.h"

using namespace lazyexec::analyze;

namespace {

Unit unit(int id, bool lazy, std::vector<std::string> binds, Names def_reads = {}, Names mentions = {},
          Names call_reads = {}, Names global_writes = {}) {
  Unit u;
  u.id = id;
  u.lazy = lazy;
  u.binds = std::move(binds);
  u.def_reads = std::move(def_reads);
  u.mentions = std::move(mentions);
  u.call_reads = std::move(call_reads);
  u.global_writes = std::move(global_writes);
  return u;
}

}  // namespace

TEST(StableInputs, MutationOfAReadNameForcesTheReaderAndItsInputs) {
  // CONFIG = {}; A = CONFIG["a"]; CONFIG["a"] = 2
  std::vector<Unit> units = {unit(0, true, {"CONFIG"}), unit(1, true, {"A"}, {"CONFIG"}),
                             unit(2, false, {}, {}, {"CONFIG"})};
  auto plan = plan_forces(units, {false, false, false});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].before, 2);
  EXPECT_EQ(plan[0].units, (std::vector<int>{0, 1}));
}

TEST(StableInputs, UnrelatedEagerStatementForcesNothing) {
  std::vector<Unit> units = {unit(0, true, {"X"}), unit(1, true, {"Y"}, {"X"}), unit(2, false, {}, {}, {"print"})};
  EXPECT_TRUE(plan_forces(units, {false, false, false}).empty());
}

TEST(StableInputs, CodeReachedThroughACallCounts) {
  // ITEMS = [1]; COUNT = len(ITEMS); def add(): ITEMS.append(..); add()
  std::vector<Unit> units = {unit(0, true, {"ITEMS"}), unit(1, true, {"COUNT"}, {"ITEMS"}),
                             unit(2, true, {"add"}, {}, {}, {"ITEMS"}), unit(3, false, {}, {}, {"add"})};
  auto plan = plan_forces(units, {false, false, false, false});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].before, 3);
  EXPECT_EQ(plan[0].units, (std::vector<int>{0, 1}));
}

TEST(StableInputs, GlobalWritesCount) {
  std::vector<Unit> units = {unit(0, true, {"X"}), unit(1, true, {"Y"}, {"X"}),
                             unit(2, true, {"bump"}, {}, {}, {}, {"X"}), unit(3, false, {}, {}, {"bump"})};
  auto plan = plan_forces(units, {false, false, false, false});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].units, (std::vector<int>{0, 1}));
}

TEST(StableInputs, DefReadsAreFollowedButNotTouched) {
  // from functools import singledispatch; @singledispatch def show; @show.register(int) def f
  std::vector<Unit> units = {unit(0, true, {"singledispatch"}), unit(1, true, {"show"}, {"singledispatch"}),
                             unit(2, false, {"f"}, {}, {"show", "f", "int"})};
  EXPECT_TRUE(plan_forces(units, {false, false, false}).empty());
}

TEST(StableInputs, StarImportForcesEveryLazyUnitBeforeIt) {
  std::vector<Unit> units = {unit(0, true, {"a"}), unit(1, false, {"b"}), unit(2, true, {"c"}),
                             unit(3, false, {}), unit(4, true, {"d"})};
  auto plan = plan_forces(units, {false, false, false, true, false});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].before, 3);
  EXPECT_EQ(plan[0].units, (std::vector<int>{0, 2}));
}

TEST(StableInputs, AUnitIsForcedOnlyOnce) {
  std::vector<Unit> units = {unit(0, true, {"X"}), unit(1, true, {"Y"}, {"X"}), unit(2, false, {}, {}, {"X"}),
                             unit(3, false, {}, {}, {"X"})};
  auto plan = plan_forces(units, {false, false, false, false});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].before, 2);
}
