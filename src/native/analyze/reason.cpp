#include "analyze/reason.h"

namespace lazyexec::analyze {
namespace {

struct Entry {
  Code code;
  std::string_view short_form;
  std::string_view sentence;
};

// Tags are defined once; the table order must follow the enum.
constexpr Entry kTable[] = {
    {Code::LazyImport, "import", "import deferred until a bound name is used"},
    {Code::LazyDef, "def", "function definition with pure decorators, defaults and annotations"},
    {Code::LazyClass, "class", "class with known-pure bases, metaclass, decorators and body"},
    {Code::LazyAssign, "assign", "assignment of a pure expression to plain names"},
    {Code::LazyTypeAlias, "type-alias", "type alias (its value is evaluated lazily anyway)"},
    {Code::LazyImportGuard, "import-guard",
     "'try' of imports with 'except ImportError' fallbacks, deferred as one unit until a name it binds is used"},
    {Code::ExpressionStatement, "expression-statement", "expression statement runs for its effect"},
    {Code::Docstring, "docstring", "module docstring"},
    {Code::DunderName, "dunder-name", "binds a module dunder name, which the import system or tools read directly"},
    {Code::MarkerName, "marker-name",
     "binds a double-underscore name, which tools look up in frame globals (unittest's __unittest marks its frames)"},
    {Code::GlobalStatement, "global-statement", "'global' at module level"},
    {Code::DelStatement, "del-statement", "'del' changes module state"},
    {Code::StarImport, "star-import", "star import binds names that cannot be known in advance"},
    {Code::FutureImport, "future-import", "__future__ import is a compiler directive"},
    {Code::CompoundStatement, "compound-statement", "compound statement is not split into units"},
    {Code::DecidedBranch, "decided-branch", "condition decided at compile time; the taken branch is analysed as top-level statements"},
    {Code::AugmentedAssignment, "augmented-assignment", "augmented assignment rebinds an existing name"},
    {Code::ComplexTarget, "complex-target", "assigns to something other than plain names"},
    {Code::AnnotationOnly, "annotation-only", "bare annotation binds nothing"},
    {Code::OtherStatement, "statement", "statement kind is never deferred"},
    {Code::ImpureCall, "impure-call", "calls a callable that is not known pure"},
    {Code::ImpureDecorator, "impure-decorator", "decorator is not known pure (it may register the definition)"},
    {Code::ImpureName, "impure-name", "reads state that changes while the program runs"},
    {Code::ImpureAttribute, "impure-attribute", "reads an attribute of an object that may compute it"},
    {Code::UnknownExpression, "impure-expression", "expression kind may run code when evaluated"},
    {Code::ImpureBase, "impure-base", "base class is not known pure (it may register subclasses)"},
    {Code::ImpureMetaclass, "impure-metaclass", "metaclass may have side effects"},
    {Code::InitSubclass, "init-subclass", "a base defines __init_subclass__, which runs when the class is created"},
    {Code::SubclassesRead, "subclasses-read",
     "the module lists a base's subclasses (__subclasses__), where creating this class adds it"},
    {Code::ImpureClassBody, "impure-class-body", "class body runs a statement that is not a pure definition"},
    {Code::Rebound, "rebound", "name is bound more than once at top level"},
    {Code::BoundInCompound, "bound-in-compound", "name is also bound inside an eager compound statement"},
    {Code::UndefinedName, "undefined-name", "reads a name no earlier statement binds (eagerly a NameError at import)"},
    {Code::ForwardReference, "forward-reference", "reads a name before the statement that binds it"},
    {Code::ShadowedBuiltin, "shadowed-builtin", "reads a builtin that the module rebinds later"},
    {Code::MutableInput, "mutable-input",
     "reads at definition time the contents of a module global whose value may change after the import"},
    {Code::GlobalRebound, "global-rebound",
     "reads at definition time a module global that a function rebinds through 'global'"},
    {Code::ModuleIntrospection, "module-introspection", "module uses frame or namespace introspection at top level"},
    {Code::NeverLazyModule, "never-lazy-module", "module is in the never-lazy set"},
    {Code::NeverLazyImport, "never-lazy-import", "imports a module kept eager for its import-time side effects"},
    {Code::SideEffectImport, "side-effect-import",
     "import binds names the module never reads nor exports: presumed made for its side effect (plugin registration)"},
    {Code::OptedOut, "opted-out", "module sets __lazy_module__ = False"},
    {Code::Absorbed, "absorbed",
     "a name imported only for the lazy units that read it while defined, then deleted: runs inside each of them"},
};

const Entry& entry(Code c) { return kTable[static_cast<int>(c)]; }

static_assert(sizeof(kTable) / sizeof(kTable[0]) == static_cast<int>(Code::Absorbed) + 1,
              "reason table out of step with the enum");

}  // namespace

std::string_view short_code(Code c) { return entry(c).short_form; }
std::string_view sentence(Code c) { return entry(c).sentence; }
bool is_lazy(Code c) { return c <= Code::LazyImportGuard; }

std::string Reason::text() const {
  std::string out(is_lazy(code) ? "lazy: " : code == Code::Absorbed ? "absorbed: " : "eager: ");
  if (!detail.empty()) {
    out += detail;
  } else {
    out += sentence(code);
  }
  return out;
}

}  // namespace lazyexec::analyze
