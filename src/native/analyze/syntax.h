// A read-only view of the tree produced by CPython's own parser
// (`compile(..., PyCF_ONLY_AST)`), so the grammar always matches the running
// interpreter. Nodes are borrowed: the root tree owns every node and is never
// mutated during analysis.
#pragma once

#include <Python.h>

#include <string>
#include <vector>

namespace lazyexec::analyze {

enum class K {
  Other,
  // statements
  FunctionDef, AsyncFunctionDef, ClassDef, Return, Delete, Assign, AugAssign, AnnAssign,
  For, AsyncFor, While, If, With, AsyncWith, Match, Raise, Try, TryStar, Assert,
  Import, ImportFrom, Global, Nonlocal, Expr, Pass, Break, Continue, TypeAlias,
  // expressions
  BoolOp, NamedExpr, BinOp, UnaryOp, Lambda, IfExp, Dict, Set, ListComp, SetComp,
  DictComp, GeneratorExp, Await, Yield, YieldFrom, Compare, Call, FormattedValue,
  JoinedStr, Constant, Attribute, Subscript, Starred, Name, List, Tuple, Slice,
  // helpers
  Not, Eq, NotEq, Lt, LtE, Gt, GtE, In, NotIn, Is, IsNot, And, Or, Load, Store, Del,
};

class Node {
 public:
  Node() = default;
  explicit Node(PyObject* o) : o_(o) {}
  explicit operator bool() const { return o_ != nullptr && o_ != Py_None; }
  PyObject* raw() const { return o_; }

  K kind() const;
  const char* type_name() const;
  Node get(const char* field) const;            // None/missing -> empty node
  std::vector<Node> list(const char* field) const;  // missing -> empty
  std::string str(const char* field) const;     // identifier fields
  long num(const char* field, long fallback = 0) const;
  int line() const { return (int)num("lineno"); }
  int end_line() const { return (int)num("end_lineno", line()); }
  int col() const { return (int)num("col_offset"); }

 private:
  PyObject* o_ = nullptr;
};

}  // namespace lazyexec::analyze
