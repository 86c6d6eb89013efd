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

TEST(StableInputs, ImportStateChangeForcesThePendingImportsBeforeIt) {
  // import a; X = 1; from b import c; def swap(): sys.modules[...] = ...; Y = swap(); import d
  std::vector<Unit> units = {unit(0, true, {"a"}), unit(1, true, {"X"}), unit(2, true, {"c"}),
                             unit(3, true, {"swap"}, {}, {}, {"c"}), unit(4, false, {"Y"}, {"swap"}, {"swap"}),
                             unit(5, true, {"d"})};
  units[0].imports = {"a"};
  units[2].imports = {"b"};
  units[5].imports = {"d"};
  units[3].touches_import_state = true;  // its body
  auto plan = plan_forces(units, std::vector<bool>(6, false));
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].before, 4);
  EXPECT_EQ(plan[0].units, (std::vector<int>{0, 2}));  // not X, not the import after the call
}

TEST(StableInputs, NoImportStateTouchedForcesNoImports) {
  std::vector<Unit> units = {unit(0, true, {"a"}), unit(1, true, {"f"}), unit(2, false, {}, {}, {"f"})};
  units[0].imports = {"a"};
  EXPECT_TRUE(plan_forces(units, std::vector<bool>(3, false)).empty());
}

TEST(StableInputs, AnEagerClassWhoseMethodsReadSysModulesForcesNothingWhenCreated) {
  // import a; class C: def f(self): return sys.modules.get(name)  (eager for another reason)
  std::vector<Unit> units = {unit(0, true, {"a"}), unit(1, false, {"C"})};
  units[0].imports = {"a"};
  units[1].touches_import_state = true;  // in a method's body, not when the class is made
  EXPECT_TRUE(plan_forces(units, {false, false}).empty());
  units[1].import_state_at_definition = true;  // the class body itself
  auto plan = plan_forces(units, {false, false});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].units, (std::vector<int>{0}));
}

TEST(StableInputs, ANamedReadOfSysModulesForcesOnlyTheImportsLoadingThatModule) {
  // import a.b; import c; HAS = "a" in sys.modules
  std::vector<Unit> units = {unit(0, true, {"a"}), unit(1, true, {"c"}), unit(2, false, {"HAS"})};
  units[0].imports = {"a.b"};
  units[1].imports = {"c"};
  units[2].loaded_module_reads_at_definition = {"a"};
  auto plan = plan_forces(units, {false, false, false});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].units, (std::vector<int>{0}));
}
