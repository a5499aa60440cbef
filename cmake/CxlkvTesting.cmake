# cxlkv_add_test(NAME SOURCES a_test.cc ... [LABELS label] [LIBS lib ...])
# One GoogleTest executable; every TEST in it becomes a ctest test with label "unit", or the
# one label given. Label "concurrent" marks suites that .ci/run also runs under ThreadSanitizer.
include(GoogleTest)
function(cxlkv_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LABELS;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES} ${PROJECT_SOURCE_DIR}/tests/test_util.cc)
  target_link_libraries(${name} PRIVATE cxlkv_static GTest::gtest GTest::gtest_main ${T_LIBS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${CXLKV_WARNINGS})
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
