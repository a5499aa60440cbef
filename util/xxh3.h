// XXH3 for cxlkv: libxxhash with its x86 dispatch, so every XXH3 call runs on the widest vector
// unit the CPU has (AVX-512, AVX2 or SSE2, chosen once at run time). The hash values are the
// same on every path, so formats and checksums on media do not depend on the machine. Without
// the dispatch, Debian's libxxhash hashes with SSE2 only: 19 GB/s here against 45 GB/s for
// bytes in cache (21.6 against 19 from memory); see docs/benchmarks.md.
#pragma once

#ifndef XXH_STATIC_LINKING_ONLY
#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t's definition, for states on the stack
#endif
#include <xxhash.h>

// Not where xxHash is compiled in (XXH_INLINE_ALL: the fuzz targets, so that ASan sees every byte
// a hash reads); the dispatchers live in libxxhash.
#if (defined(__x86_64__) || defined(__i386__)) && !defined(XXH_INLINE_ALL)
#include <xxh_x86dispatch.h>  // renames XXH3_64bits and XXH3_64bits_update to the dispatchers
#endif
