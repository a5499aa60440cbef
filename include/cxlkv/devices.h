// Discovery of the memory a machine offers to cxlkv: NUMA nodes (CXL memory expanders appear as
// CPU-less nodes), /dev/dax devices (libdaxctl) and CXL memory devices (libcxl).
//
// Thread-safety: the functions are thread-safe; each call reads sysfs and the libraries afresh.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv {

struct NumaNodeInfo {
  int id = 0;
  std::uint64_t memory_bytes = 0;
  std::uint64_t free_bytes = 0;
  std::vector<int> cpus;
  std::vector<int> distances;  // to node 0, 1, ... in node order, as the firmware reports them
  bool cpu_less() const { return cpus.empty(); }
  // A CPU-less node with memory is how a CXL memory expander (or kmem-onlined devdax) appears.
  bool likely_cxl() const { return cpus.empty() && memory_bytes > 0; }
};

struct DaxDeviceInfo {
  std::string path;            // /dev/dax0.0
  std::uint64_t size = 0;
  std::uint64_t alignment = 0;  // mapping alignment the device requires
  std::string mode;            // "devdax" or "system-ram"
  int numa_node = -1;          // target node; -1 when unknown
  int region_id = -1;
};

struct CxlMemdevInfo {
  std::string name;   // mem0
  std::string host;   // the PCI device behind it
  std::uint64_t ram_bytes = 0;
  std::uint64_t pmem_bytes = 0;
  std::uint64_t serial = 0;
  int numa_node = -1;
  std::string firmware;
};

struct CxlRegionInfo {
  std::string name;     // region0
  std::string decoder;  // root decoder it sits under
  std::uint64_t size = 0;
  std::string mode;     // "ram" or "pmem"
  std::vector<std::string> memdevs;
};

// An NVDIMM namespace (libndctl): how persistent memory, such as a CXL pmem region, is carved
// into a /dev/dax or /dev/pmem device.
struct NamespaceInfo {
  std::string name;        // namespace0.0
  std::string region;      // the nvdimm region it sits in: region0
  std::string bus;         // the bus provider: "ACPI.NFIT", "cxl_acpi.0", "nfit_test.0"
  std::string mode;        // "devdax", "fsdax", "sector", "raw" or "unknown"
  std::uint64_t size = 0;
  std::string dax_device;  // devdax mode: /dev/daxX.Y; empty otherwise
  int numa_node = -1;
};

struct DeviceInventory {
  std::vector<NumaNodeInfo> numa_nodes;
  std::vector<DaxDeviceInfo> dax_devices;
  std::vector<CxlMemdevInfo> cxl_memdevs;
  std::vector<CxlRegionInfo> cxl_regions;
  std::vector<NamespaceInfo> namespaces;  // active ones
  // One line per source that could not be read (no permission, library context failed):
  // discovery reports what it could and says what it could not.
  std::vector<std::string> warnings;
};

// Reads NUMA nodes from `sysfs_node_dir` (tests pass a fake tree); the real one by default.
Result<std::vector<NumaNodeInfo>> DiscoverNumaNodes(
    const std::string& sysfs_node_dir = "/sys/devices/system/node");
std::vector<DaxDeviceInfo> DiscoverDaxDevices(std::vector<std::string>* warnings = nullptr);
std::vector<CxlMemdevInfo> DiscoverCxlMemdevs(std::vector<std::string>* warnings = nullptr);
std::vector<CxlRegionInfo> DiscoverCxlRegions(std::vector<std::string>* warnings = nullptr);
std::vector<NamespaceInfo> DiscoverNamespaces(std::vector<std::string>* warnings = nullptr);
DeviceInventory DiscoverDevices();

// Looks one device up by path through libdaxctl; NotFound when libdaxctl does not know it.
Result<DaxDeviceInfo> FindDaxDevice(const std::string& path);

}  // namespace cxlkv
