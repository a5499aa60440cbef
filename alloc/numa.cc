#include "alloc/numa.h"

#include <numa.h>
#include <numaif.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>

#include "util/format.h"

namespace cxlkv::numa {
namespace {

using Bitmask = std::unique_ptr<bitmask, decltype(&numa_bitmask_free)>;

Bitmask AllocateNodeMask() { return Bitmask(numa_allocate_nodemask(), &numa_bitmask_free); }

std::vector<int> NodesIn(const bitmask* mask) {
  std::vector<int> nodes;
  if (mask == nullptr) return nodes;
  for (unsigned long i = 0; i < mask->size; ++i) {
    if (numa_bitmask_isbitset(mask, static_cast<unsigned>(i))) nodes.push_back(static_cast<int>(i));
  }
  return nodes;
}

// The kernel returns MPOL_F_STATIC_NODES / MPOL_F_RELATIVE_NODES / MPOL_F_NUMA_BALANCING in the
// high bits of the mode; the policy itself is what is left.
constexpr int kModeFlags = (1 << 15) | (1 << 14) | (1 << 13);

std::string ModeName(int mode) {
  switch (mode & ~kModeFlags) {
    case MPOL_DEFAULT: return "default";
    case MPOL_PREFERRED: return "preferred";
    case MPOL_BIND: return "bind";
    case MPOL_INTERLEAVE: return "interleave";
    case MPOL_LOCAL: return "local";
    case MPOL_PREFERRED_MANY: return "preferred-many";
    default: return "mode " + std::to_string(mode);
  }
}

std::string AddressText(const void* addr) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%p", addr);
  return buf;
}

}  // namespace

Status CheckAvailable() {
  if (numa_available() < 0) {
    return Status::Unsupported(
        "NUMA is not available on this machine (numa_available() < 0: the kernel lacks "
        "CONFIG_NUMA or get_mempolicy is blocked)");
  }
  return Status::Ok();
}

std::vector<int> ConfiguredNodes() {
  if (numa_available() < 0) return {};
  std::vector<int> nodes = NodesIn(numa_nodes_ptr);
  // numa_nodes_ptr is sized to the possible nodes; keep the ones up to the highest configured.
  const int max_node = numa_max_node();
  std::erase_if(nodes, [max_node](int n) { return n > max_node; });
  return nodes;
}

std::string FormatNodeList(const std::vector<int>& nodes) {
  return nodes.empty() ? "none" : FormatRangeList(nodes);
}

Status CheckNodeCanHold(int node, std::size_t size) {
  CXLKV_RETURN_IF_ERROR(CheckAvailable());
  const std::string name = "NUMA node " + std::to_string(node);
  if (node < 0) return Status::InvalidArgument(name + " is not a node number (must be >= 0)");
  const std::vector<int> nodes = ConfiguredNodes();
  const bool exists = node <= numa_max_node() &&
                      numa_bitmask_isbitset(numa_nodes_ptr, static_cast<unsigned>(node));
  if (!exists) {
    return Status::NotFound(name + " does not exist (this machine has nodes " +
                            FormatNodeList(nodes) + ")");
  }
  long long free_bytes = 0;
  const long long total = numa_node_size64(node, &free_bytes);
  if (total < 0) {
    return Status::IOError("cannot read the memory size of " + name +
                           " from /sys/devices/system/node/node" + std::to_string(node));
  }
  if (total == 0) {
    return Status::InvalidArgument(name +
                                   " has no memory (a CPU-only node); bind to a node with memory");
  }
  if (static_cast<unsigned long long>(total) < size) {
    return Status::NoSpace(name + " has " + FormatBytes(static_cast<std::uint64_t>(total)) +
                           " of memory, less than the " + FormatBytes(size) + " to map");
  }
  // A cpuset (container, systemd slice) may fence a node off; mbind would then say EINVAL.
  Bitmask allowed(numa_get_mems_allowed(), &numa_bitmask_free);
  if (allowed && !numa_bitmask_isbitset(allowed.get(), static_cast<unsigned>(node))) {
    return Status::PermissionDenied(name + " is outside this process's cpuset (allowed nodes " +
                                    FormatNodeList(NodesIn(allowed.get())) + ")");
  }
  return Status::Ok();
}

Status BindToNode(void* addr, std::size_t len, int node) {
  CXLKV_RETURN_IF_ERROR(CheckAvailable());
  Bitmask mask = AllocateNodeMask();
  if (!mask || node < 0 || static_cast<unsigned long>(node) >= mask->size) {
    return Status::InvalidArgument("NUMA node " + std::to_string(node) +
                                   " is outside the node mask of this machine");
  }
  numa_bitmask_setbit(mask.get(), static_cast<unsigned>(node));
  // maxnode is one more than the mask's bits: the kernel drops the last bit (as libnuma does).
  if (mbind(addr, len, MPOL_BIND, mask->maskp, mask->size + 1,
            MPOL_MF_STRICT | MPOL_MF_MOVE) != 0) {
    return Status::FromErrno("mbind of " + FormatBytes(len) + " at " + AddressText(addr) +
                                 " to NUMA node " + std::to_string(node),
                             errno);
  }
  return Status::Ok();
}

Result<std::vector<int>> PageNodes(const void* addr, std::size_t len, std::size_t page_size) {
  if (page_size == 0 || !IsPowerOfTwo(page_size)) {
    return Status::InvalidArgument("page size " + std::to_string(page_size) +
                                   " is not a power of two");
  }
  const std::uintptr_t begin = reinterpret_cast<std::uintptr_t>(addr);
  const std::size_t count = (len + page_size - 1) / page_size;
  std::vector<void*> pages(count);
  for (std::size_t i = 0; i < count; ++i) {
    pages[i] = reinterpret_cast<void*>(begin + i * page_size);
  }
  std::vector<int> status(count, -ENOENT);
  if (count == 0) return status;
  // nodes == nullptr: query mode, nothing moves.
  if (move_pages(0, count, pages.data(), nullptr, status.data(), 0) != 0) {
    return Status::FromErrno("move_pages query of " + std::to_string(count) + " pages at " +
                                 AddressText(addr),
                             errno);
  }
  return status;
}

Result<MemoryPolicy> PolicyAt(const void* addr) {
  CXLKV_RETURN_IF_ERROR(CheckAvailable());
  Bitmask mask = AllocateNodeMask();
  if (!mask) return Status::NoSpace("cannot allocate a NUMA node mask");
  MemoryPolicy policy;
  if (get_mempolicy(&policy.mode, mask->maskp, mask->size + 1, const_cast<void*>(addr),
                    MPOL_F_ADDR) != 0) {
    return Status::FromErrno("get_mempolicy at " + AddressText(addr), errno);
  }
  policy.nodes = NodesIn(mask.get());
  return policy;
}

Result<int> BoundPolicyNode(const void* addr) {
  CXLKV_ASSIGN_OR_RETURN(const MemoryPolicy policy, PolicyAt(addr));
  if ((policy.mode & ~kModeFlags) != MPOL_BIND || policy.nodes.size() != 1) {
    return Status::InvalidArgument("memory at " + AddressText(addr) + " has policy " +
                                   ModeName(policy.mode) + " on nodes " +
                                   FormatNodeList(policy.nodes) + ", not bind to one node");
  }
  return policy.nodes.front();
}

}  // namespace cxlkv::numa
