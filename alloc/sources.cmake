# Memory sources: DRAM, NUMA node, file and device DAX (included from alloc/CMakeLists.txt).
target_sources(cxlkv_objects PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/os_memory.cc
  ${CMAKE_CURRENT_LIST_DIR}/numa.cc
  ${CMAKE_CURRENT_LIST_DIR}/anonymous_source.cc
  ${CMAKE_CURRENT_LIST_DIR}/pmem2_source.cc
  ${CMAKE_CURRENT_LIST_DIR}/dax_devices.cc)

if(CXLKV_BUILD_TESTS)
  cxlkv_add_test(alloc_sources_test SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/os_memory_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/dram_source_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/numa_source_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/pmem2_source_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/memory_source_test.cc)
endif()
