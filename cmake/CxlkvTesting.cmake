# cxlkv_add_test(NAME SOURCES a_test.cc ... [LABELS label] [LIBS lib ...])
# One GoogleTest executable; every TEST in it becomes a ctest test with label "unit", or the
# one label given. Label "concurrent" marks suites that .ci/run also runs under ThreadSanitizer.
include(GoogleTest)

# tests/test_util.cc (temporary directories, fixtures' helpers), compiled once for every suite.
function(cxlkv_test_util_library)
  if(NOT TARGET cxlkv_test_util)
    add_library(cxlkv_test_util STATIC ${PROJECT_SOURCE_DIR}/tests/test_util.cc)
    target_include_directories(cxlkv_test_util PUBLIC ${PROJECT_SOURCE_DIR})
    target_link_libraries(cxlkv_test_util PUBLIC GTest::gtest)  # and GTest's definitions
    target_compile_options(cxlkv_test_util PRIVATE ${CXLKV_WARNINGS})
    # Every suite reuses this target's precompiled GoogleTest header (a second off each test
    # file's compile): its flags must match an executable's, so -fPIE here, not -fPIC.
    set_target_properties(cxlkv_test_util PROPERTIES POSITION_INDEPENDENT_CODE OFF)
    target_compile_options(cxlkv_test_util PRIVATE -fPIE)
    target_precompile_headers(cxlkv_test_util PRIVATE <gtest/gtest.h> <string> <thread>
      <vector>)
  endif()
endfunction()

function(cxlkv_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LABELS;LIBS" ${ARGN})
  cxlkv_test_util_library()
  add_executable(${name} ${T_SOURCES})
  # cxlkv_test_util brings GoogleTest and the source root's include path.
  target_link_libraries(${name} PRIVATE cxlkv_static cxlkv_test_util GTest::gtest_main ${T_LIBS})
  target_compile_options(${name} PRIVATE ${CXLKV_WARNINGS})
  target_precompile_headers(${name} REUSE_FROM cxlkv_test_util)
  # One label per suite: gtest_discover_tests passes properties through a generated script
  # that splits a list of labels into separate properties.
  set(labels unit)
  if(T_LABELS)
    set(labels ${T_LABELS})
  endif()
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${labels}" TIMEOUT 300)
  # The ThreadSanitizer run builds only these (target "concurrent_tests"), not the whole tree.
  if("concurrent" IN_LIST labels)
    if(NOT TARGET concurrent_tests)
      add_custom_target(concurrent_tests)
    endif()
    add_dependencies(concurrent_tests ${name})
  endif()
endfunction()
