#include "util/media_lock.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

namespace cxlkv {
namespace {

constexpr std::uint64_t kToEnd = ~std::uint64_t{0};
// How long a lock with no visible holder is tried again: 100 x 20 ms.
constexpr int kRetries = 100;
constexpr useconds_t kRetryMicros = 20000;

// The last byte of [offset, offset + length); kToEnd for length 0.
std::uint64_t LastByte(std::uint64_t offset, std::uint64_t length) {
  return length == 0 || length > kToEnd - offset ? kToEnd : offset + length - 1;
}

bool AllDigits(const char* s) {
  if (*s == '\0') return false;
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9') return false;
  }
  return true;
}

// Whether an fdinfo file lists an OFD write lock overlapping [first, last]. Its lines read
// "lock:\t1: OFDLCK ADVISORY  WRITE -1 fd:01:1234 0 EOF" (fs/locks.c, lock_get_status).
bool FdinfoHoldsLock(const std::string& fdinfo, std::uint64_t first, std::uint64_t last) {
  std::ifstream in(fdinfo);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("lock:", 0) != 0) continue;
    std::istringstream words(line.substr(5));
    std::string id, kind, mode, type, pid, inode, start, end;
    if (!(words >> id >> kind >> mode >> type >> pid >> inode >> start >> end)) continue;
    if (kind != "OFDLCK" || type != "WRITE") continue;
    const std::uint64_t s = std::strtoull(start.c_str(), nullptr, 10);
    const std::uint64_t e = end == "EOF" ? kToEnd : std::strtoull(end.c_str(), nullptr, 10);
    if (s <= last && first <= e) return true;
  }
  return false;
}

std::string CommandLine(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/cmdline", std::ios::binary);
  std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!cmd.empty() && cmd.back() == '\0') cmd.pop_back();
  for (char& c : cmd) {
    if (c == '\0') c = ' ';
  }
  constexpr std::size_t kMax = 160;
  if (cmd.size() > kMax) cmd = cmd.substr(0, kMax) + "...";
  return cmd.empty() ? "(command line unreadable)" : cmd;
}

}  // namespace

std::string DescribeMediaLockHolders(std::uint64_t dev, std::uint64_t ino, std::uint64_t offset,
                                     std::uint64_t length) {
  const std::uint64_t first = offset, last = LastByte(offset, length);
  std::string holders;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return "";
  while (const dirent* p = readdir(proc)) {
    if (!AllDigits(p->d_name)) continue;
    const std::string pid = p->d_name;
    DIR* fds = opendir(("/proc/" + pid + "/fd").c_str());
    if (fds == nullptr) continue;  // gone, or another user's
    bool holds = false;
    while (const dirent* f = readdir(fds)) {
      if (!AllDigits(f->d_name)) continue;
      struct stat st {};
      if (stat(("/proc/" + pid + "/fd/" + f->d_name).c_str(), &st) != 0) continue;
      if (static_cast<std::uint64_t>(st.st_dev) != dev ||
          static_cast<std::uint64_t>(st.st_ino) != ino) {
        continue;
      }
      if (FdinfoHoldsLock("/proc/" + pid + "/fdinfo/" + f->d_name, first, last)) {
        holds = true;
        break;
      }
    }
    closedir(fds);
    if (holds) {
      if (!holders.empty()) holders += "; ";
      holders += "pid " + pid + (pid == std::to_string(getpid()) ? " (this process)" : "") +
                 ": " + CommandLine(pid);
    }
  }
  closedir(proc);
  return holders;
}

Status LockMedia(int fd, const std::string& path, std::uint64_t offset, std::uint64_t length) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return Status::FromErrno("fstat " + path, errno);
  std::string holders;
  int err = 0;
  // A holder that just died can keep its lock a moment longer: an io_uring with the file
  // registered drops it when the kernel tears the ring down, after the process is reaped. So
  // while no live holder is in sight, the lock is tried again for a while.
  for (int attempt = 0;; ++attempt) {
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    lock.l_start = static_cast<off_t>(offset);
    lock.l_len = static_cast<off_t>(length);
    if (fcntl(fd, F_OFD_SETLK, &lock) == 0) return Status::Ok();
    err = errno;
    if (err != EAGAIN && err != EACCES) break;
    holders = DescribeMediaLockHolders(static_cast<std::uint64_t>(st.st_dev),
                                       static_cast<std::uint64_t>(st.st_ino), offset, length);
    if (!holders.empty() || attempt == kRetries) break;
    usleep(kRetryMicros);
  }
  if (err != EAGAIN && err != EACCES) {
    if (err == ENOLCK || err == EOPNOTSUPP || err == EINVAL) {
      return Status::Unsupported("cannot lock " + path + " (" + std::strerror(err) +
                                 "): its file system has no byte-range locks, so cxlkv cannot "
                                 "keep a second store from opening it; use another file system");
    }
    return Status::FromErrno("locking " + path, err);
  }
  std::string range = "bytes " + std::to_string(offset) + "..";
  range += length == 0 ? "end" : std::to_string(offset + length);
  if (holders.empty()) holders = "a process this one cannot see (another user's)";
  return Status::Busy(path + " is in use: " + range + " are locked by " + holders +
                      "; a pool, device or spill log is opened by one store (or cxlkv fsck, "
                      "cxlkv format) at a time");
}

}  // namespace cxlkv
