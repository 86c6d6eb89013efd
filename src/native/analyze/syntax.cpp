#include "analyze/syntax.h"

#include <string_view>
#include <unordered_map>

#include "py/handle.h"

namespace lazyexec::analyze {
namespace {

K kind_from_name(std::string_view n) {
  static const std::unordered_map<std::string_view, K> table = {
      {"FunctionDef", K::FunctionDef}, {"AsyncFunctionDef", K::AsyncFunctionDef},
      {"ClassDef", K::ClassDef}, {"Return", K::Return}, {"Delete", K::Delete},
      {"Assign", K::Assign}, {"AugAssign", K::AugAssign}, {"AnnAssign", K::AnnAssign},
      {"For", K::For}, {"AsyncFor", K::AsyncFor}, {"While", K::While}, {"If", K::If},
      {"With", K::With}, {"AsyncWith", K::AsyncWith}, {"Match", K::Match}, {"Raise", K::Raise},
      {"Try", K::Try}, {"TryStar", K::TryStar}, {"Assert", K::Assert}, {"Import", K::Import},
      {"ImportFrom", K::ImportFrom}, {"Global", K::Global}, {"Nonlocal", K::Nonlocal},
      {"Expr", K::Expr}, {"Pass", K::Pass}, {"Break", K::Break}, {"Continue", K::Continue},
      {"TypeAlias", K::TypeAlias}, {"BoolOp", K::BoolOp}, {"NamedExpr", K::NamedExpr},
      {"BinOp", K::BinOp}, {"UnaryOp", K::UnaryOp}, {"Lambda", K::Lambda}, {"IfExp", K::IfExp},
      {"Dict", K::Dict}, {"Set", K::Set}, {"ListComp", K::ListComp}, {"SetComp", K::SetComp},
      {"DictComp", K::DictComp}, {"GeneratorExp", K::GeneratorExp}, {"Await", K::Await},
      {"Yield", K::Yield}, {"YieldFrom", K::YieldFrom}, {"Compare", K::Compare}, {"Call", K::Call},
      {"FormattedValue", K::FormattedValue}, {"JoinedStr", K::JoinedStr},
      {"Constant", K::Constant}, {"Attribute", K::Attribute}, {"Subscript", K::Subscript},
      {"Starred", K::Starred}, {"Name", K::Name}, {"List", K::List}, {"Tuple", K::Tuple},
      {"Slice", K::Slice}, {"Not", K::Not}, {"Eq", K::Eq}, {"NotEq", K::NotEq}, {"Lt", K::Lt},
      {"LtE", K::LtE}, {"Gt", K::Gt}, {"GtE", K::GtE}, {"In", K::In}, {"NotIn", K::NotIn},
      {"Is", K::Is}, {"IsNot", K::IsNot}, {"And", K::And}, {"Or", K::Or}, {"Load", K::Load},
      {"Store", K::Store}, {"Del", K::Del},
  };
  auto it = table.find(n);
  return it == table.end() ? K::Other : it->second;
}

// Attribute names are interned once; the cache lives as long as the process
// (the extension is never unloaded).
PyObject* interned(const char* field) {
  static std::unordered_map<const char*, PyObject*> cache;
  auto it = cache.find(field);
  if (it != cache.end()) return it->second;
  PyObject* s = PyUnicode_InternFromString(field);
  if (s == nullptr) throw py::PyError{};
  cache.emplace(field, s);
  return s;
}

}  // namespace

const char* Node::type_name() const { return o_ ? _PyType_Name(Py_TYPE(o_)) : ""; }

K Node::kind() const {
  if (!*this) return K::Other;
  // One lookup per node type, not per node.
  static std::unordered_map<PyTypeObject*, K> by_type;
  PyTypeObject* t = Py_TYPE(o_);
  auto it = by_type.find(t);
  if (it != by_type.end()) return it->second;
  K k = kind_from_name(_PyType_Name(t));
  by_type.emplace(t, k);
  return k;
}

Node Node::get(const char* field) const {
  if (!*this) return Node();
  PyObject* v = PyObject_GetAttr(o_, interned(field));
  if (v == nullptr) {
    PyErr_Clear();  // fields differ between versions: missing means absent
    return Node();
  }
  Py_DECREF(v);  // still owned by the node's __dict__; the tree is not mutated
  return Node(v);
}

std::vector<Node> Node::list(const char* field) const {
  std::vector<Node> out;
  Node l = get(field);
  if (!l || !PyList_Check(l.raw())) return out;
  Py_ssize_t n = PyList_GET_SIZE(l.raw());
  out.reserve((size_t)n);
  for (Py_ssize_t i = 0; i < n; ++i) out.emplace_back(PyList_GET_ITEM(l.raw(), i));
  return out;
}

std::string Node::str(const char* field) const { return py::utf8(get(field).raw()); }

long Node::num(const char* field, long fallback) const {
  Node v = get(field);
  if (!v || !PyLong_Check(v.raw())) return fallback;
  return PyLong_AsLong(v.raw());
}

}  // namespace lazyexec::analyze
