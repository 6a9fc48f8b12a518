# prefopt_sanitizers: a private INTERFACE target that adds AddressSanitizer + UndefinedBehavior
# sanitizer flags when PREFOPT_SANITIZE is ON (tests, examples and benchmarks link it).
add_library(prefopt_sanitizers INTERFACE)
if(PREFOPT_SANITIZE)
  set(_prefopt_san_flags -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_compile_options(prefopt_sanitizers INTERFACE ${_prefopt_san_flags}
    # GCC 12's flow analysis reports false "may be used uninitialized" inside libstdc++'s <regex>
    # (included by Catch2) once the sanitizers instrument optimised code.
    $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)
  target_link_options(prefopt_sanitizers INTERFACE ${_prefopt_san_flags})
endif()

# prefopt_openmp: OpenMP for prefopt's own targets when PREFOPT_OPENMP is ON.
add_library(prefopt_openmp INTERFACE)
if(PREFOPT_OPENMP)
  find_package(OpenMP REQUIRED COMPONENTS CXX)
  target_link_libraries(prefopt_openmp INTERFACE OpenMP::OpenMP_CXX)
endif()

# prefopt_internal: everything prefopt's own tests, examples and benchmarks link.
add_library(prefopt_internal INTERFACE)
target_link_libraries(prefopt_internal INTERFACE prefopt_warnings prefopt_sanitizers prefopt_openmp)
