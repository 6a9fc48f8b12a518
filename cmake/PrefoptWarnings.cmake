# prefopt_warnings: a private INTERFACE target with prefopt's warning set (DESIGN.md §7), linked by
# the tests, examples and benchmarks. Never exported or installed: consumers keep their own flags.
add_library(prefopt_warnings INTERFACE)
target_compile_options(prefopt_warnings INTERFACE
  $<$<OR:$<CXX_COMPILER_ID:GNU>,$<CXX_COMPILER_ID:Clang>,$<CXX_COMPILER_ID:AppleClang>>:
    -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow -Wnon-virtual-dtor
    -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual
    -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough>
  $<$<CXX_COMPILER_ID:GNU>:-Wmisleading-indentation -Wduplicated-cond -Wlogical-op>
  $<$<CXX_COMPILER_ID:MSVC>:/W4 /permissive->)
if(PREFOPT_WARNINGS_AS_ERRORS)
  target_compile_options(prefopt_warnings INTERFACE
    $<$<OR:$<CXX_COMPILER_ID:GNU>,$<CXX_COMPILER_ID:Clang>,$<CXX_COMPILER_ID:AppleClang>>:-Werror>
    $<$<CXX_COMPILER_ID:MSVC>:/WX>)
endif()
