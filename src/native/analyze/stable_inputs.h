// Rule 4 of the safety model: a lazy unit must see at first use the same
// inputs it would have seen eagerly. If a later eager statement may rebind,
// delete or mutate a name the unit reads at definition time, the unit (and the
// lazy units it reads) is materialized just before that statement.
//
// A pure function over the units' facts: no Python, unit-tested directly.
#pragma once

#include <vector>

#include "analyze/unit.h"

namespace lazyexec::analyze {

// `star_before[i]` is true when unit i is a star import (everything lazy
// before it is forced).
std::vector<Force> plan_forces(const std::vector<Unit>& units, const std::vector<bool>& star);

}  // namespace lazyexec::analyze
