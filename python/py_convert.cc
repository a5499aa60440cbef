#include "python/py_convert.h"

#include <chrono>
#include <span>
#include <string_view>
#include <stdexcept>

#include "cxlkv/store_counters.h"
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

StoreOptions Options(const py::list& tiers, const py::object& chunk_sizes,
                     const py::object& slab_size, const py::object& spill_path,
                     const py::object& spill_capacity, int ttl_seconds, bool background,
                     unsigned copy_threads) {
  StoreOptions o;
  std::size_t i = 0;
  for (const py::handle& h : tiers) {
    const std::string where = "tiers[" + std::to_string(i++) + "]";
    if (!py::isinstance<py::dict>(h)) throw py::type_error(where + " must be a dict");
    const auto d = h.cast<py::dict>();
    for (const auto& [k, v] : d) {
      const auto key = k.cast<std::string>();
      static const char* known[] = {"source", "capacity", "name", "eviction", "copy",
                                    "high_watermark", "low_watermark", "promote_after_hits",
                                    "durability", "format"};
      bool ok = false;
      for (const char* n : known) ok = ok || key == n;
      if (!ok) throw py::value_error(where + ": unknown key '" + key + "'");
    }
    if (!d.contains("source") || !d.contains("capacity")) {
      throw py::value_error(where + " needs 'source' and 'capacity'");
    }
    TierOptions t;
    t.source_spec = d["source"].cast<std::string>();
    t.capacity = SizeArg(d["capacity"], where + ".capacity");
    if (d.contains("name")) t.name = d["name"].cast<std::string>();
    if (d.contains("eviction")) t.eviction = d["eviction"].cast<std::string>();
    if (d.contains("copy")) t.copy = d["copy"].cast<std::string>();
    if (d.contains("high_watermark")) t.high_watermark = d["high_watermark"].cast<double>();
    if (d.contains("low_watermark")) t.low_watermark = d["low_watermark"].cast<double>();
    if (d.contains("promote_after_hits")) t.promote_after_hits = d["promote_after_hits"].cast<int>();
    if (d.contains("durability")) t.durability = d["durability"].cast<std::string>();
    if (d.contains("format")) t.format = d["format"].cast<bool>();
    o.tiers.push_back(std::move(t));
  }
  if (!chunk_sizes.is_none()) {
    for (const py::handle& h : chunk_sizes) o.chunk_sizes.push_back(SizeArg(h, "chunk_sizes"));
  }
  if (!slab_size.is_none()) o.slab_size = SizeArg(slab_size, "slab_size");
  if (!spill_path.is_none()) {
    o.spill.path = spill_path.cast<std::string>();
    if (!spill_capacity.is_none()) o.spill.capacity = SizeArg(spill_capacity, "spill_capacity");
  }
  o.ttl = std::chrono::seconds(ttl_seconds);
  o.background_thread = background;
  o.copy_threads = copy_threads;
  return o;
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
