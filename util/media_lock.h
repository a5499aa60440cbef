// LockMedia: the exclusive lock a pool file, a /dev/dax device or a spill log holds while it is
// open, so that two stores (two processes, or two opens in one process) never share one and
// return each other's bytes. The one place that takes and explains these locks.
//
// The lock is an open file description (OFD) lock, fcntl(F_OFD_SETLK), on the byte range in
// use, chosen over the alternatives because:
//  - it belongs to the open file description, so a second open() of the same file in the same
//    process conflicts with the first (a POSIX fcntl lock belongs to the process: its second
//    open would get the lock too, and closing either fd would drop it for both);
//  - the kernel drops it when the last fd of that description closes: at a close, and when the
//    process dies however it dies (kill -9, OOM), so there is never a stale lock to clean up, as
//    a lock file or a holder record on the media would leave;
//  - it locks a byte range, so tiers on disjoint ranges of one device (DevDaxOptions::offset)
//    both open, where flock() would lock the whole device;
//  - it works on any inode: regular files, /dev/dax character devices, block devices.
// It is advisory: it keeps out cxlkv (every store, `cxlkv fsck`, `cxlkv format`), not a process
// that writes the file without asking (docs/security.md).
//
// The kernel does not say who holds an OFD lock (F_OFD_GETLK and /proc/locks give pid -1), so
// the error finds the holder itself: a process with an fd on the same inode whose
// /proc/<pid>/fdinfo/<fd> lists an OFD lock there, named by pid and command line. That is best
// effort (another user's processes are not readable); the error says when it found nobody.
//
// Thread-safety: thread-safe (it keeps no state).
#pragma once

#include <cstdint>
#include <string>

#include "cxlkv/status.h"

namespace cxlkv {

// Takes an exclusive lock on [offset, offset + length) of fd (length 0: to the end of the file,
// however far it grows), held until fd's open file description is closed. Busy when another
// open description holds a lock there, with a message naming `path`, the range and the holder
// ("pid 1234: cxlkv serve --config x.toml"); Unsupported when the file system has no locks.
Status LockMedia(int fd, const std::string& path, std::uint64_t offset, std::uint64_t length);

// Who holds an OFD lock on the inode (st_dev, st_ino) overlapping [offset, offset + length):
// "pid N: command line" for each holder found, "; "-separated, or "" when none is found.
std::string DescribeMediaLockHolders(std::uint64_t dev, std::uint64_t ino, std::uint64_t offset,
                                     std::uint64_t length);

}  // namespace cxlkv
