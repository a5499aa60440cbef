// Thread-safety annotations: which mutex guards which field, and which locks a function needs.
// Under clang with -Wthread-safety (cmake -DCXLKV_THREAD_SAFETY=ON, run by tools/test.sh) a
// field touched without its mutex, or a function called without the locks it REQUIRES, is a
// compile error; under GCC the macros expand to nothing. Only capability types are understood:
// use cxlkv::internal::Mutex and MutexLock, or SharedMutex with ReaderLock and WriterLock
// (util/mutex.h), not std::mutex or std::shared_mutex, for a guarded lock.
//
// The macros are clang's attributes (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html)
// under the names that document the intent at the declaration.
#pragma once

#if defined(__clang__)
#define CXLKV_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define CXLKV_THREAD_ANNOTATION(x)
#endif

// On a class: objects of it are locks ("mutex" names the kind in messages).
#define CAPABILITY(name) CXLKV_THREAD_ANNOTATION(capability(name))
// On an RAII class whose constructor acquires and destructor releases a capability.
#define SCOPED_CAPABILITY CXLKV_THREAD_ANNOTATION(scoped_lockable)

// On a field: reading or writing it needs `mu` held.
#define GUARDED_BY(mu) CXLKV_THREAD_ANNOTATION(guarded_by(mu))
// On a pointer (or smart pointer) field: what it points to needs `mu` held.
#define PT_GUARDED_BY(mu) CXLKV_THREAD_ANNOTATION(pt_guarded_by(mu))
// On a mutex: it is always taken after (before) the listed ones. Documentation for now: clang
// checks lock order only under -Wthread-safety-beta.
#define ACQUIRED_AFTER(...) CXLKV_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define ACQUIRED_BEFORE(...) CXLKV_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))

// On a function: the caller holds (does not hold) these locks.
#define REQUIRES(...) CXLKV_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) CXLKV_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// On a function: it takes (releases) these locks and returns with them held (released).
#define ACQUIRE(...) CXLKV_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) CXLKV_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) CXLKV_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
// The same for a reader's (shared) hold of a reader/writer lock.
#define REQUIRES_SHARED(...) CXLKV_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) CXLKV_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) CXLKV_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define TRY_ACQUIRE_SHARED(...) \
  CXLKV_THREAD_ANNOTATION(try_acquire_shared_capability(__VA_ARGS__))

// On a function: when it returns, the caller holds this lock (for a check that cannot be
// followed statically, e.g. in a callback run synchronously under the lock).
#define ASSERT_CAPABILITY(x) CXLKV_THREAD_ANNOTATION(assert_capability(x))

// On a function the analysis cannot follow (say why at each use).
#define NO_THREAD_SAFETY_ANALYSIS CXLKV_THREAD_ANNOTATION(no_thread_safety_analysis)
