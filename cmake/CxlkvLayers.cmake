# The library's layers, bottom up: util, alloc, prefetch, backends (the store), then server,
# python and tools, each above all of those. A layer's code sees only itself and the layers
# below it: its only include path is a tree of links (build/layers/NAME) to the source folders
# it may use and the public headers (include/cxlkv) it may use. Sources keep including
# "util/x.h" and "cxlkv/store.h" as before, but a folder or public header missing from the
# tree is not found, so the build refuses an upward include instead of a review having to
# spot it.

# cxlkv_layer_includes(TARGET DIRS path... HEADERS header...|ALL)
# Builds TARGET's tree and makes it TARGET's private include path. A path is a folder or a
# file of the repository (backends/eviction, backends/entry.h: one part of a lower layer).
function(cxlkv_layer_includes target)
  cmake_parse_arguments(L "" "" "DIRS;HEADERS" ${ARGN})
  set(root ${PROJECT_BINARY_DIR}/layers/${target})
  file(REMOVE_RECURSE ${root})
  file(MAKE_DIRECTORY ${root}/cxlkv)
  foreach(path ${L_DIRS})
    get_filename_component(parent ${root}/${path} DIRECTORY)
    file(MAKE_DIRECTORY ${parent})
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/${path} ${root}/${path} SYMBOLIC)
  endforeach()
  if(L_HEADERS STREQUAL "ALL")
    file(GLOB L_HEADERS RELATIVE ${PROJECT_SOURCE_DIR}/include/cxlkv
         ${PROJECT_SOURCE_DIR}/include/cxlkv/*.h)
  endif()
  foreach(header ${L_HEADERS})
    if(NOT EXISTS ${PROJECT_SOURCE_DIR}/include/cxlkv/${header})
      message(FATAL_ERROR "${target}: no public header include/cxlkv/${header}")
    endif()
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/include/cxlkv/${header} ${root}/cxlkv/${header}
         SYMBOLIC)
  endforeach()
  target_include_directories(${target} PRIVATE ${root})
endfunction()

# cxlkv_layer(NAME DIRS dir... HEADERS header...|ALL)
# A layer of the library proper: an object library (sources added by its folder's
# CMakeLists.txt) that cxlkv_shared and cxlkv_static are linked from.
function(cxlkv_layer name)
  add_library(${name} OBJECT)
  cxlkv_layer_includes(${name} ${ARGN})
  target_include_directories(${name} INTERFACE $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>)
  target_compile_options(${name} PRIVATE ${CXLKV_WARNINGS})
  target_link_libraries(${name} PRIVATE ${CXLKV_PRIVATE_LIBS} nlohmann_json::nlohmann_json)
endfunction()
