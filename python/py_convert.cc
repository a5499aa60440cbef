#include "python/py_convert.h"

#include <chrono>
#include <span>
#include <string_view>
#include <stdexcept>

#include "cxlkv/store_counters.h"
#include "options/store_schema.h"
#include "util/format.h"

namespace cxlkv::python {

[[noreturn]] void Raise(const Status& s) {
  const std::string msg = s.ToString();
  switch (s.code()) {
    case StatusCode::kNotFound: throw py::key_error(msg);
    case StatusCode::kInvalidArgument: throw py::value_error(msg);
    case StatusCode::kNoSpace: PyErr_SetString(PyExc_MemoryError, msg.c_str()); throw py::error_already_set();
    default: throw std::runtime_error(msg);
  }
}

Bytes View(const py::object& obj, bool writable) {
  if (!PyObject_CheckBuffer(obj.ptr())) {
    throw py::type_error("expected a buffer (bytes, bytearray, memoryview, numpy array; torch "
                         "tensors go through cxlkv.as_buffer)");
  }
  Bytes b;
  b.info = std::make_unique<py::buffer_info>(py::reinterpret_borrow<py::buffer>(obj).request(writable));
  const py::buffer_info& i = *b.info;
  // C-contiguous: the bytes are one run.
  py::ssize_t expect = i.itemsize;
  for (py::ssize_t d = i.ndim - 1; d >= 0; --d) {
    const auto dim = static_cast<std::size_t>(d);
    if (i.shape[dim] > 1 && i.strides[dim] != expect) {
      throw py::value_error("buffer is not C-contiguous");
    }
    expect *= i.shape[dim];
  }
  b.data = static_cast<std::byte*>(i.ptr);
  b.size = static_cast<std::size_t>(i.size * i.itemsize);
  return b;
}

std::size_t SizeArg(const py::handle& v, const std::string& what) {
  if (py::isinstance<py::int_>(v)) {
    const auto n = v.cast<long long>();
    if (n < 0) throw py::value_error(what + " must not be negative");
    return static_cast<std::size_t>(n);
  }
  if (py::isinstance<py::str>(v)) {
    Result<std::uint64_t> n = ParseBytes(v.cast<std::string>());
    if (!n.ok()) Raise(n.status().WithContext(what));
    return static_cast<std::size_t>(*n);
  }
  throw py::type_error(what + " must be an int (bytes) or a string like \"256M\"");
}

ChunkMeta MetaArg(const py::bytes& meta) {
  const std::string m = meta;
  Result<ChunkMeta> r = ChunkMeta::From(std::as_bytes(std::span(m.data(), m.size())));
  if (!r.ok()) Raise(r.status());
  return *r;
}

py::bytes MetaBytes(const ChunkMeta& m) {
  return py::bytes(reinterpret_cast<const char*>(m.bytes.data()), m.size);
}

namespace {

options::OptionValue ValueOf(const py::handle& v, const std::string& name) {
  // bool first: Python's bool is an int.
  if (py::isinstance<py::bool_>(v)) return {v.cast<bool>()};
  if (py::isinstance<py::int_>(v)) return {v.cast<std::int64_t>()};
  if (py::isinstance<py::float_>(v)) return {v.cast<double>()};
  if (py::isinstance<py::str>(v)) return {v.cast<std::string>()};
  if (py::isinstance<py::list>(v) || py::isinstance<py::tuple>(v)) {
    std::vector<options::OptionValue> list;
    for (const py::handle& e : v) {
      list.push_back(ValueOf(e, name + "[" + std::to_string(list.size()) + "]"));
    }
    return {std::move(list)};
  }
  throw py::type_error(name + " must be a bool, a number, a string or a list, not " +
                       std::string(py::str(v.get_type().attr("__name__"))));
}

// A dict's or keyword arguments' items, None values left out (not given). Python names a key
// 'key' in `where`, or as the keyword itself.
std::vector<options::NamedValue> Items(const py::dict& d, const std::string& where) {
  std::vector<options::NamedValue> values;
  for (const auto& [k, v] : d) {
    if (v.is_none()) continue;
    const auto key = k.cast<std::string>();
    const std::string name = where.empty() ? key : "'" + key + "' in " + where;
    values.push_back({key, ValueOf(v, name), name});
  }
  return values;
}

}  // namespace

StoreOptions Options(const py::handle& tiers, const py::dict& kwargs) {
  StoreOptions o;
  if (!py::isinstance<py::list>(tiers) && !py::isinstance<py::tuple>(tiers)) {
    throw py::type_error("tiers must be a list of dicts");
  }
  for (const py::handle& h : tiers) {
    const std::string where = "tiers[" + std::to_string(o.tiers.size()) + "]";
    if (!py::isinstance<py::dict>(h)) throw py::type_error(where + " must be a dict");
    TierOptions t;
    const Status s = options::Apply(options::TierSchema(), Items(h.cast<py::dict>(), where),
                                    where + ".", t);
    if (!s.ok()) Raise(s);
    o.tiers.push_back(std::move(t));
  }
  const Status s = options::ApplyFlat(Items(kwargs, ""), o);
  if (!s.ok()) Raise(s);
  return o;
}

StoreOptions ConnectorOptions(const py::kwargs& adapter_params) {
  py::dict rest;
  py::object tiers;
  for (const auto& [k, v] : adapter_params) {
    if (k.cast<std::string>() == "tiers") {
      tiers = py::reinterpret_borrow<py::object>(v);
    } else {
      rest[k] = v;
    }
  }
  if (!tiers || tiers.is_none()) {  // one DRAM tier of 1 GiB
    py::dict dram;
    dram["source"] = "dram";
    dram["capacity"] = "1G";
    py::list one;
    one.append(dram);
    tiers = one;
  }
  return Options(tiers, rest);
}

namespace {

py::str Key(std::string_view key) { return py::str(key.data(), key.size()); }

// d[key] = value for every row of Counters<Stats>().
template <typename Stats>
py::dict AddCounters(py::dict d, const Stats& stats) {
  VisitCounters(stats, [&](const CounterInfo& info, auto value) { d[Key(info.key)] = value; });
  return d;
}

}  // namespace

py::dict StatsDict(const StoreStats& st) {
  py::list tiers;
  for (const TierStats& t : st.tiers) {
    py::dict d;
    for (const TierLabel& label : TierLabels()) d[Key(label.key)] = t.*label.field;
    tiers.append(AddCounters(std::move(d), t));
  }
  py::dict d = AddCounters(py::dict(), st);
  d["tiers"] = tiers;
  d["prefetch"] = AddCounters(py::dict(), st.prefetch);
  for (const TimedOperation& op : TimedOperations()) {
    d[Key(op.key)] = AddCounters(py::dict(), st.*op.summary);
  }
  return d;
}

}  // namespace cxlkv::python
