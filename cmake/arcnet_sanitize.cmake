# Sanitizer builds (scripts/run_sanitizers.sh runs them in CI). ARCNET_SANITIZE is a -fsanitize=
# list: "address,undefined" (AddressSanitizer + UndefinedBehaviorSanitizer) or "thread"
# (ThreadSanitizer). The flags go on the targets this project compiles (tests, test tools,
# examples), never on the exported arcnet targets, so an installed arcnet carries none of them.
# Every report is fatal (-fno-sanitize-recover=all): a sanitizer run passes only when clean.
# ThreadSanitizer needs ARCNET_OPENMP=OFF (its default then, see arcnet_targets.cmake): GCC's
# libgomp is not built with TSan, so its barriers look like data races in every OpenMP region.
set(ARCNET_SANITIZE "" CACHE STRING
    "Build tests and programs with -fsanitize=<list>: address,undefined or thread (empty: no sanitizer)")
if(ARCNET_SANITIZE)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    message(FATAL_ERROR "arcnet: ARCNET_SANITIZE needs GCC or Clang, not ${CMAKE_CXX_COMPILER_ID}")
  endif()
  if(ARCNET_SANITIZE MATCHES "thread" AND ARCNET_SANITIZE MATCHES "address|leak|memory")
    message(FATAL_ERROR "arcnet: ARCNET_SANITIZE=${ARCNET_SANITIZE}: ThreadSanitizer cannot be combined with "
                        "Address/Leak/MemorySanitizer; configure a second build directory for it")
  endif()
  # -g1: line tables, enough for file:line in every report, at a fraction of the cost of -g.
  add_compile_options(-fsanitize=${ARCNET_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer -g1)
  add_link_options(-fsanitize=${ARCNET_SANITIZE})
  # GCC 12's sanitizer instrumentation makes -Wmaybe-uninitialized fire inside libstdc++'s own
  # <regex> (std::function moved in _NFA::_M_insert_*, GCC bug 105562), which Catch2 includes.
  add_compile_options($<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)
  message(STATUS "arcnet: tests and programs built with -fsanitize=${ARCNET_SANITIZE}")

  # arcnet_sanitize_targets: what scripts/run_sanitizers.sh builds, decided once the whole tree
  # is configured: the unit tests (and the MPI ones), and for the programs tests the programs (the
  # examples that link arcnet::engine) with the tool that writes their data.
  function(arcnet_sanitize_collect_targets)
    add_custom_target(arcnet_sanitize_targets)
    if(TARGET arcnet_tests)
      add_dependencies(arcnet_sanitize_targets arcnet_tests)
    endif()
    if(TARGET arcnet_mpi_tests)  # the distributed tests (MPI)
      add_dependencies(arcnet_sanitize_targets arcnet_mpi_tests)
    endif()
    if(TARGET arcnet_make_inshop)
      add_dependencies(arcnet_sanitize_targets arcnet_make_inshop)
      get_property(examples DIRECTORY ${PROJECT_SOURCE_DIR}/examples PROPERTY BUILDSYSTEM_TARGETS)
      foreach(t IN LISTS examples)
        get_target_property(libs ${t} LINK_LIBRARIES)
        if("arcnet::engine" IN_LIST libs)
          add_dependencies(arcnet_sanitize_targets ${t})
        endif()
      endforeach()
    endif()
  endfunction()
  cmake_language(DEFER CALL arcnet_sanitize_collect_targets)
endif()
