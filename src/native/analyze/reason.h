// Why a unit is lazy or eager. Each reason has a stable short code (tests,
// JSON, statistics) and a sentence a person can act on; the detail names the
// offending thing and the line.
#pragma once

#include <string>
#include <string_view>

namespace lazyexec::analyze {

enum class Code {
  // lazy
  LazyImport, LazyDef, LazyClass, LazyAssign, LazyTypeAlias, LazyImportGuard,
  // eager: by kind (rule 1, rule 5)
  ExpressionStatement, Docstring, DunderName, MarkerName, GlobalStatement, DelStatement, StarImport,
  FutureImport, CompoundStatement, DecidedBranch, AugmentedAssignment, ComplexTarget,
  AnnotationOnly, OtherStatement,
  // eager: purity (rule 2)
  ImpureCall, ImpureDecorator, ImpureName, ImpureAttribute, UnknownExpression,
  // eager: classes (rule 3)
  ImpureBase, ImpureMetaclass, InitSubclass, SubclassesRead, ImpureClassBody,
  // eager: stable inputs and name resolution (rule 4)
  Rebound, BoundInCompound, UndefinedName, ForwardReference, ShadowedBuiltin,
  // eager: inputs that may change after the import (rule 4, after the import)
  MutableInput, GlobalRebound,
  // eager: module-wide (rule 5, policy)
  ModuleIntrospection, NeverLazyModule, NeverLazyImport, SideEffectImport, OptedOut,
  // neither: a temporary import and its `del`, run inside the lazy units that read it
  Absorbed,
};

std::string_view short_code(Code c);
bool is_lazy(Code c);
// "eager: calls register() (not known pure) at line 42" is built from this
// sentence start plus the unit's detail.
std::string_view sentence(Code c);

struct Reason {
  Code code = Code::OtherStatement;
  std::string detail;  // e.g. "register() at line 42"
  std::string text() const;  // the full sentence, verdict first
};

}  // namespace lazyexec::analyze
