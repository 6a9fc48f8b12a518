# Install rules and package config for find_package(prefopt CONFIG).
include(CMakePackageConfigHelpers)

set(PREFOPT_CMAKE_INSTALL_DIR "${CMAKE_INSTALL_DATADIR}/cmake/prefopt"
    CACHE STRING "Where prefopt's package config is installed")

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/prefopt"
        DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        FILES_MATCHING PATTERN "*.hpp")
install(TARGETS prefopt prefopt_io prefopt_native EXPORT prefoptTargets)
install(EXPORT prefoptTargets
        NAMESPACE prefopt::
        DESTINATION "${PREFOPT_CMAKE_INSTALL_DIR}")

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/prefoptConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/prefoptConfig.cmake"
  INSTALL_DESTINATION "${PREFOPT_CMAKE_INSTALL_DIR}")
# Header-only: the version file must not check the consumer's pointer size.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/prefoptConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion
  ARCH_INDEPENDENT)
install(FILES "${PROJECT_BINARY_DIR}/prefoptConfig.cmake"
              "${PROJECT_BINARY_DIR}/prefoptConfigVersion.cmake"
        DESTINATION "${PREFOPT_CMAKE_INSTALL_DIR}")
install(FILES "${PROJECT_SOURCE_DIR}/LICENSE" DESTINATION "${CMAKE_INSTALL_DATADIR}/doc/prefopt")
