# The install test links a separate project against the installed library; a sanitizer build's
# library would need the consumer built with the same sanitizer, so it runs in plain builds only.
if(CXLKV_SANITIZE STREQUAL "")
  add_test(NAME install_find_package_and_pkg_config
           COMMAND ${PROJECT_SOURCE_DIR}/tests/install_test.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
  set_tests_properties(install_find_package_and_pkg_config PROPERTIES LABELS "install" TIMEOUT 300)
endif()
