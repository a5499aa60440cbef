// Conversions between Python objects and cxlkv values, shared by the bindings of _cxlkv
// (the Store in cxlkv_module.cc, LMCache's native connector in lmcache_native.cc).
// Call with the GIL held.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <memory>
#include <string>

#include "cxlkv/status.h"
#include "cxlkv/store.h"

namespace cxlkv::python {

namespace py = pybind11;

// NotFound -> KeyError, InvalidArgument -> ValueError, NoSpace -> MemoryError, else
// RuntimeError; the message keeps the code's name.
[[noreturn]] void Raise(const Status& s);

// A contiguous view of a buffer-protocol object's bytes.
struct Bytes {
  std::unique_ptr<py::buffer_info> info;  // holds the exporter's buffer until destroyed
  std::byte* data = nullptr;
  std::size_t size = 0;
};

// TypeError for an object without the buffer protocol, ValueError for one that is not
// C-contiguous (or not writable when `writable`).
Bytes View(const py::object& obj, bool writable);

// A size in bytes from an int or a string like "256M".
std::size_t SizeArg(const py::handle& v, const std::string& what);

ChunkMeta MetaArg(const py::bytes& meta);
py::bytes MetaBytes(const ChunkMeta& m);

// StoreOptions through the options schema (options/store_schema.h): `tiers` a list of dicts
// of [[tier]] keys; `kwargs` the [store] keys and the [spill] keys prefixed spill_ (None: not
// given). ValueError naming the key for an unknown key or a bad value.
StoreOptions Options(const py::handle& tiers, const py::dict& kwargs);
// LMCache's adapter_params: the same, with "tiers" among them (default one DRAM tier of 1 GiB).
StoreOptions ConnectorOptions(const py::kwargs& adapter_params);

// Store::Stats() as a dict, keyed as cxlkv/store_counters.h names them: "tiers" (a list of
// dicts: the tier's labels and counters), the store-wide counters ("misses", ...), "prefetch"
// (a dict) and one dict per latency summary ("put_latency", ...).
py::dict StatsDict(const StoreStats& st);

}  // namespace cxlkv::python
