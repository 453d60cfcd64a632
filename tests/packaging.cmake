# Packaging checks, included from tests/CMakeLists.txt:
#  - arcnet_header_check: every public header (all but the ops/cpu backends) compiles on its own
#    (one generated TU per header, built with the tests: a header that is not self-contained fails
#    the build);
#  - packaging.find_package: install this build tree into a prefix, build and run tests/consumer
#    against it with find_package(arcnet);
#  - packaging.add_subdirectory: the same consumer with add_subdirectory(<arcnet source>).

# ---- compile-alone check of the public headers ------------------------------------------------
file(GLOB_RECURSE arcnet_public_headers CONFIGURE_DEPENDS RELATIVE ${PROJECT_SOURCE_DIR}/include
     ${PROJECT_SOURCE_DIR}/include/arcnet/*.hpp)
set(arcnet_header_check_sources "")
set(arcnet_header_check_links arcnet::arcnet)
set(arcnet_header_check_skipped "")
# The CPU backends (ops/cpu/*.hpp) are reached only through their facades (DESIGN.md), which
# declare the primary templates they specialise; the facades' own checks cover them.
list(FILTER arcnet_public_headers EXCLUDE REGEX "^arcnet/ops/cpu/")
foreach(header IN LISTS arcnet_public_headers)
  # Headers of optional components (io: nlohmann_json; data: TurboJPEG, libpng, zlib; engine:
  # Boost; viz: cairo; mpi: MPI) are checked, linked with their component target, when that target exists.
  file(READ ${PROJECT_SOURCE_DIR}/include/${header} text)
  set(component "")
  if(header MATCHES "^arcnet/io/" OR text MATCHES "#include <nlohmann/")
    set(component io)
  elseif(header MATCHES "^arcnet/data/" OR text MATCHES "#include <(turbojpeg|png|zlib)\\.h>")
    set(component data)
  elseif(header MATCHES "^arcnet/engine/" OR text MATCHES "#include <boost/")
    set(component engine)
  elseif(header MATCHES "^arcnet/viz/" OR text MATCHES "#include <cairo")
    set(component viz)
  elseif(text MATCHES "#include <mpi\\.h>")
    set(component mpi)
  endif()
  if(component)
    if(NOT TARGET arcnet::${component})
      list(APPEND arcnet_header_check_skipped ${header})
      continue()
    endif()
    list(APPEND arcnet_header_check_links arcnet::${component})
  endif()
  string(MAKE_C_IDENTIFIER ${header} id)
  set(tu ${CMAKE_CURRENT_BINARY_DIR}/header_check/${id}.cpp)
  # Included twice: the second inclusion checks #pragma once.
  file(CONFIGURE OUTPUT ${tu} CONTENT "#include <${header}>\n#include <${header}>\n" @ONLY)
  list(APPEND arcnet_header_check_sources ${tu})
endforeach()
list(REMOVE_DUPLICATES arcnet_header_check_links)
list(LENGTH arcnet_header_check_sources n)
if(arcnet_header_check_skipped)
  message(STATUS "arcnet: compile-alone check of ${n} public headers; skipped (component target missing): "
                 "${arcnet_header_check_skipped}")
else()
  message(STATUS "arcnet: compile-alone check of ${n} public headers")
endif()
add_library(arcnet_header_check OBJECT ${arcnet_header_check_sources})
target_link_libraries(arcnet_header_check PRIVATE ${arcnet_header_check_links})
# Parsing is what is checked: no optimisation, but every warning.
target_compile_options(arcnet_header_check PRIVATE -O0 -Wall -Wextra)

# ---- the installed package and add_subdirectory -----------------------------------------------
set(arcnet_consumer_args
    -DARCNET_SOURCE_DIR=${PROJECT_SOURCE_DIR} -DARCNET_BINARY_DIR=${PROJECT_BINARY_DIR}
    -DGENERATOR=${CMAKE_GENERATOR} -DCXX_COMPILER=${CMAKE_CXX_COMPILER} -DARCNET_CUDA=${ARCNET_WITH_CUDA})
foreach(mode find_package add_subdirectory)
  add_test(NAME packaging.${mode}
           COMMAND ${CMAKE_COMMAND} ${arcnet_consumer_args} -DMODE=${mode}
                   -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/packaging/${mode}
                   -P ${CMAKE_CURRENT_SOURCE_DIR}/consumer/run_consumer.cmake)
  set_tests_properties(packaging.${mode} PROPERTIES LABELS packaging TIMEOUT 600)
endforeach()
