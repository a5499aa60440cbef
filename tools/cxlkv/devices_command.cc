// `cxlkv devices`: what memory this machine offers to cxlkv tiers. NUMA nodes (a CPU-less
// node with memory is how a CXL expander shows up), /dev/dax devices and CXL memory devices
// and regions. It never fails for lack of hardware: absence is reported in one line each.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cxlkv/devices.h"
#include "tools/cxlkv/commands.h"
#include "util/format.h"

namespace cxlkv::cli {
namespace {

std::string Join(const std::vector<int>& values) {
  std::string out;
  for (int v : values) out += (out.empty() ? "" : " ") + std::to_string(v);
  return out;
}

std::string Join(const std::vector<std::string>& values) {
  std::string out;
  for (const std::string& v : values) out += (out.empty() ? "" : ",") + v;
  return out;
}

std::string NodeName(int node) { return node < 0 ? "unknown" : std::to_string(node); }

void PrintText(const DeviceInventory& inv) {
  std::printf("NUMA nodes (%zu):\n", inv.numa_nodes.size());
  for (const NumaNodeInfo& n : inv.numa_nodes) {
    std::string cpus;
    if (n.likely_cxl()) {
      cpus = "CPU-less (likely CXL memory)";
    } else if (n.cpu_less()) {
      cpus = "CPU-less, no memory";
    } else {
      cpus = "CPUs " + FormatRangeList(n.cpus);
    }
    std::printf("  node %d: %s, %s free, %s, distances %s\n", n.id,
                FormatBytes(n.memory_bytes).c_str(), FormatBytes(n.free_bytes).c_str(),
                cpus.c_str(), Join(n.distances).c_str());
  }

  if (inv.dax_devices.empty()) {
    std::printf("no /dev/dax devices\n");
  } else {
    std::printf("DAX devices (%zu):\n", inv.dax_devices.size());
    for (const DaxDeviceInfo& d : inv.dax_devices) {
      std::printf("  %s: %s, alignment %s, mode %s, NUMA node %s\n", d.path.c_str(),
                  FormatBytes(d.size).c_str(), FormatBytes(d.alignment).c_str(), d.mode.c_str(),
                  NodeName(d.numa_node).c_str());
    }
  }

  if (inv.cxl_memdevs.empty()) {
    std::printf("no CXL memory devices\n");
  } else {
    std::printf("CXL memory devices (%zu):\n", inv.cxl_memdevs.size());
    for (const CxlMemdevInfo& m : inv.cxl_memdevs) {
      std::printf("  %s (%s): ram %s, pmem %s, serial 0x%llx, NUMA node %s, firmware %s\n",
                  m.name.c_str(), m.host.c_str(), FormatBytes(m.ram_bytes).c_str(),
                  FormatBytes(m.pmem_bytes).c_str(), static_cast<unsigned long long>(m.serial),
                  NodeName(m.numa_node).c_str(), m.firmware.empty() ? "-" : m.firmware.c_str());
    }
  }
  // Regions exist only with memdevs; say nothing about them otherwise.
  if (!inv.cxl_regions.empty()) {
    std::printf("CXL regions (%zu):\n", inv.cxl_regions.size());
    for (const CxlRegionInfo& r : inv.cxl_regions) {
      std::printf("  %s under %s: %s, mode %s, memdevs %s\n", r.name.c_str(), r.decoder.c_str(),
                  FormatBytes(r.size).c_str(), r.mode.c_str(),
                  r.memdevs.empty() ? "-" : Join(r.memdevs).c_str());
    }
  } else if (!inv.cxl_memdevs.empty()) {
    std::printf("no CXL regions\n");
  }

  // NVDIMM namespaces (a CXL pmem region carved into /dev/dax): only where there are some.
  if (!inv.namespaces.empty()) {
    std::printf("Namespaces (%zu):\n", inv.namespaces.size());
    for (const NamespaceInfo& n : inv.namespaces) {
      std::printf("  %s in %s (bus %s): %s, mode %s%s, NUMA node %s\n", n.name.c_str(),
                  n.region.c_str(), n.bus.c_str(), FormatBytes(n.size).c_str(), n.mode.c_str(),
                  n.dax_device.empty() ? "" : (", " + n.dax_device).c_str(),
                  NodeName(n.numa_node).c_str());
    }
  }

  for (const std::string& warning : inv.warnings) std::printf("warning: %s\n", warning.c_str());
}

nlohmann::ordered_json ToJson(const DeviceInventory& inv) {
  nlohmann::ordered_json numa = nlohmann::ordered_json::array();
  for (const NumaNodeInfo& n : inv.numa_nodes) {
    numa.push_back({{"id", n.id},
                    {"memory_bytes", n.memory_bytes},
                    {"free_bytes", n.free_bytes},
                    {"cpus", n.cpus},
                    {"cpulist", FormatRangeList(n.cpus)},
                    {"distances", n.distances},
                    {"cpu_less", n.cpu_less()},
                    {"likely_cxl", n.likely_cxl()}});
  }
  nlohmann::ordered_json dax = nlohmann::ordered_json::array();
  for (const DaxDeviceInfo& d : inv.dax_devices) {
    dax.push_back({{"path", d.path},
                   {"size_bytes", d.size},
                   {"alignment_bytes", d.alignment},
                   {"mode", d.mode},
                   {"numa_node", d.numa_node},
                   {"region_id", d.region_id}});
  }
  nlohmann::ordered_json memdevs = nlohmann::ordered_json::array();
  for (const CxlMemdevInfo& m : inv.cxl_memdevs) {
    memdevs.push_back({{"name", m.name},
                       {"host", m.host},
                       {"ram_bytes", m.ram_bytes},
                       {"pmem_bytes", m.pmem_bytes},
                       {"serial", m.serial},
                       {"numa_node", m.numa_node},
                       {"firmware", m.firmware}});
  }
  nlohmann::ordered_json regions = nlohmann::ordered_json::array();
  for (const CxlRegionInfo& r : inv.cxl_regions) {
    regions.push_back({{"name", r.name},
                       {"decoder", r.decoder},
                       {"size_bytes", r.size},
                       {"mode", r.mode},
                       {"memdevs", r.memdevs}});
  }
  nlohmann::ordered_json namespaces = nlohmann::ordered_json::array();
  for (const NamespaceInfo& n : inv.namespaces) {
    namespaces.push_back({{"name", n.name},
                          {"region", n.region},
                          {"bus", n.bus},
                          {"mode", n.mode},
                          {"size_bytes", n.size},
                          {"dax_device", n.dax_device},
                          {"numa_node", n.numa_node}});
  }
  return {{"numa_nodes", numa},
          {"dax_devices", dax},
          {"cxl_memdevs", memdevs},
          {"cxl_regions", regions},
          {"namespaces", namespaces},
          {"warnings", inv.warnings}};
}

}  // namespace

Command AddDevicesCommand(CLI::App& root) {
  auto json = std::make_shared<bool>(false);
  CLI::App* app = root.add_subcommand(
      "devices", "List NUMA nodes (CXL expanders appear CPU-less), /dev/dax, CXL devices and namespaces");
  app->add_flag("--json", *json, "Print one JSON object instead of text");
  return {app, [json] {
            const DeviceInventory inventory = DiscoverDevices();
            if (*json) {
              std::printf("%s\n", ToJson(inventory).dump(2).c_str());
            } else {
              PrintText(inventory);
            }
            return kExitOk;
          }};
}

}  // namespace cxlkv::cli
