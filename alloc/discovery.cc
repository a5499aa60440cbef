// NUMA discovery from sysfs, and the inventory that puts NUMA, /dev/dax and CXL together.
//
// NUMA nodes are read from sysfs text files rather than through libnuma: libnuma answers for
// the running machine only, while reading files lets tests point the same code at a fake tree
// (a CPU-less node with memory, a malformed cpulist) that no test machine has.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "cxlkv/devices.h"

namespace cxlkv {
namespace {

// Far above any real CPU count; a range beyond it is a corrupt file, not a big machine.
constexpr int kMaxCpuId = 1 << 20;

Result<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::FromErrno("reading " + path, errno);
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return Status::IOError("reading " + path + " failed");
  return contents.str();
}

std::string_view Trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  const std::size_t first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  const std::size_t last = text.find_last_not_of(kSpace);
  return text.substr(first, last - first + 1);
}

// A whole decimal integer, nothing before or after it.
template <typename T>
bool ParseInteger(std::string_view text, T* out) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

Status Malformed(const std::string& path, std::string_view what) {
  return Status::Corruption(path + ": " + std::string(what));
}

// "0-3,8,10-11\n" -> {0,1,2,3,8,10,11}. An empty file is a CPU-less node.
Result<std::vector<int>> ParseCpuList(const std::string& path, std::string_view text) {
  std::vector<int> cpus;
  text = Trim(text);
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    const std::string_view item = Trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);

    const std::size_t dash = item.find('-');
    int first = 0;
    int last = 0;
    if (!ParseInteger(item.substr(0, dash), &first)) {
      return Malformed(path, "bad CPU list item '" + std::string(item) + "'");
    }
    last = first;
    if (dash != std::string_view::npos && !ParseInteger(item.substr(dash + 1), &last)) {
      return Malformed(path, "bad CPU range '" + std::string(item) + "'");
    }
    if (first < 0 || last < first || last > kMaxCpuId) {
      return Malformed(path, "bad CPU range '" + std::string(item) + "'");
    }
    for (int cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

// "Node 0 MemTotal:  4548812 kB" lines; fills total and free bytes. Both must be present.
Status ParseMeminfo(const std::string& path, std::string_view text, NumaNodeInfo* node) {
  bool have_total = false;
  bool have_free = false;
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string word_node, id, key, value, unit;
    if (!(fields >> word_node >> id >> key >> value)) continue;  // blank or foreign lines
    if (key != "MemTotal:" && key != "MemFree:") continue;
    fields >> unit;
    std::uint64_t kib = 0;
    if (word_node != "Node" || !ParseInteger(std::string_view(value), &kib) || unit != "kB" ||
        kib > (UINT64_MAX >> 10)) {
      return Malformed(path, "bad line '" + line + "'");
    }
    if (key == "MemTotal:") {
      node->memory_bytes = kib << 10;
      have_total = true;
    } else {
      node->free_bytes = kib << 10;
      have_free = true;
    }
  }
  if (!have_total || !have_free) return Malformed(path, "no MemTotal or MemFree line");
  return Status::Ok();
}

// "10 21" -> {10, 21}.
Result<std::vector<int>> ParseDistances(const std::string& path, std::string_view text) {
  std::vector<int> distances;
  std::istringstream fields{std::string(text)};
  std::string field;
  while (fields >> field) {
    int distance = 0;
    if (!ParseInteger(std::string_view(field), &distance) || distance < 0) {
      return Malformed(path, "bad distance '" + field + "'");
    }
    distances.push_back(distance);
  }
  if (distances.empty()) return Malformed(path, "no distances");
  return distances;
}

Result<NumaNodeInfo> ReadNode(const std::string& node_dir, int id) {
  NumaNodeInfo node;
  node.id = id;

  const std::string meminfo_path = node_dir + "/meminfo";
  CXLKV_ASSIGN_OR_RETURN(const std::string meminfo, ReadSmallFile(meminfo_path));
  CXLKV_RETURN_IF_ERROR(ParseMeminfo(meminfo_path, meminfo, &node));

  const std::string cpulist_path = node_dir + "/cpulist";
  CXLKV_ASSIGN_OR_RETURN(const std::string cpulist, ReadSmallFile(cpulist_path));
  CXLKV_ASSIGN_OR_RETURN(node.cpus, ParseCpuList(cpulist_path, cpulist));

  const std::string distance_path = node_dir + "/distance";
  CXLKV_ASSIGN_OR_RETURN(const std::string distance, ReadSmallFile(distance_path));
  CXLKV_ASSIGN_OR_RETURN(node.distances, ParseDistances(distance_path, distance));
  return node;
}

}  // namespace

Result<std::vector<NumaNodeInfo>> DiscoverNumaNodes(const std::string& sysfs_node_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(sysfs_node_dir, ec);
  if (ec) {
    return Status::FromErrno("listing NUMA nodes in " + sysfs_node_dir, ec.value());
  }

  // Node ids come from the "nodeN" directory names: sysfs lists only nodes that exist, and
  // ids may have holes (node0, node2) on machines with offline or hot-pluggable memory.
  std::vector<int> ids;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    int id = -1;
    if (name.size() > 4 && name.compare(0, 4, "node") == 0 &&
        ParseInteger(std::string_view(name).substr(4), &id) && id >= 0 &&
        it->is_directory(ec)) {
      ids.push_back(id);
    }
  }
  if (ec) return Status::FromErrno("listing NUMA nodes in " + sysfs_node_dir, ec.value());
  std::sort(ids.begin(), ids.end());

  std::vector<NumaNodeInfo> nodes;
  nodes.reserve(ids.size());
  for (int id : ids) {
    CXLKV_ASSIGN_OR_RETURN(NumaNodeInfo node,
                           ReadNode(sysfs_node_dir + "/node" + std::to_string(id), id));
    nodes.push_back(std::move(node));
  }
  return nodes;
}

DeviceInventory DiscoverDevices() {
  DeviceInventory inventory;
  Result<std::vector<NumaNodeInfo>> numa = DiscoverNumaNodes();
  if (numa.ok()) {
    inventory.numa_nodes = std::move(numa).value();
  } else {
    inventory.warnings.push_back("NUMA nodes: " + numa.status().ToString());
  }
  inventory.dax_devices = DiscoverDaxDevices(&inventory.warnings);
  inventory.cxl_memdevs = DiscoverCxlMemdevs(&inventory.warnings);
  inventory.cxl_regions = DiscoverCxlRegions(&inventory.warnings);
  inventory.namespaces = DiscoverNamespaces(&inventory.warnings);
  return inventory;
}

}  // namespace cxlkv
