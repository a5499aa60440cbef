// NUMA placement: which nodes exist, binding a range to one node, and checking where pages are.
//
// This is the one place in cxlkv that talks to libnuma and to the mbind / move_pages /
// get_mempolicy system calls (through <numaif.h>, which libnuma provides). A CXL memory
// expander shows up as a CPU-less node, so binding to a node is how cxlkv puts a tier on CXL.
//
// Thread-safety: all functions are thread-safe; they keep no state of their own.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv::numa {

// OK when the kernel has NUMA support (numa_available() >= 0); Unsupported otherwise.
Status CheckAvailable();

// The nodes the machine has, ascending (numa_nodes_ptr); empty without NUMA support.
std::vector<int> ConfiguredNodes();

// "0-3,6": a node list in the kernel's cpulist form, for messages.
std::string FormatNodeList(const std::vector<int>& nodes);

// OK when `node` exists and has memory, with size the bytes a mapping will need:
// NotFound for a node the machine does not have ("NUMA node 7 does not exist (this machine has
// nodes 0-1)"), InvalidArgument for a negative node or one without memory (a CPU-only node),
// NoSpace when the node's total memory is smaller than `size`.
Status CheckNodeCanHold(int node, std::size_t size);

// Binds [addr, addr+len) (page aligned) to `node` only: mbind(MPOL_BIND, MPOL_MF_STRICT |
// MPOL_MF_MOVE). Pages faulted in afterwards come from that node or not at all; pages already
// present are moved there, and when one cannot be moved the call fails (IOError).
Status BindToNode(void* addr, std::size_t len, int node);

// The node of each page of [addr, addr+len), stepping by page_size, as move_pages(2) reports it
// in query mode: a node number, or a negative errno for a page that is not present (-ENOENT).
Result<std::vector<int>> PageNodes(const void* addr, std::size_t len, std::size_t page_size);

// The memory policy of the mapping holding addr (get_mempolicy with MPOL_F_ADDR).
struct MemoryPolicy {
  int mode = 0;             // MPOL_DEFAULT, MPOL_BIND, ... from <numaif.h>
  std::vector<int> nodes;   // the policy's node mask, ascending
};
Result<MemoryPolicy> PolicyAt(const void* addr);

// The single node a MPOL_BIND policy at addr binds to; InvalidArgument naming the mode and the
// nodes when the policy is something else.
Result<int> BoundPolicyNode(const void* addr);

}  // namespace cxlkv::numa
