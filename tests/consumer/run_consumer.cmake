# Builds and runs tests/consumer against this build of arcnet; `cmake -P` script for ctest.
#   -DMODE=find_package      install the build tree into WORK_DIR/prefix, then find_package(arcnet)
#   -DMODE=add_subdirectory  add_subdirectory(ARCNET_SOURCE_DIR)
# Other inputs: ARCNET_SOURCE_DIR, ARCNET_BINARY_DIR, WORK_DIR, GENERATOR, CXX_COMPILER,
# ARCNET_CUDA (ON/OFF, for add_subdirectory). The consumer builds without optimisation: what is
# checked is the packaging, and -O0 halves the compile time.
cmake_minimum_required(VERSION 3.25)

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "packaging (${MODE}): ${what} failed (exit ${rc})\n  command: ${cmd}\n${out}\n${err}")
  endif()
  message(STATUS "packaging (${MODE}): ${what}: ok")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

foreach(var MODE ARCNET_SOURCE_DIR ARCNET_BINARY_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(consumer_args -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=
                  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)

if(MODE STREQUAL "find_package")
  set(prefix ${WORK_DIR}/prefix)
  run_step("cmake --install into ${prefix}" ${CMAKE_COMMAND} --install ${ARCNET_BINARY_DIR} --prefix ${prefix})
  foreach(f include/arcnet/arcnet.hpp include/arcnet/core/tensor.hpp)
    if(NOT EXISTS ${prefix}/${f})
      message(FATAL_ERROR "packaging (${MODE}): ${prefix}/${f} was not installed")
    endif()
  endforeach()
  file(GLOB_RECURSE config_files ${prefix}/*/arcnetConfig.cmake)
  if(NOT config_files)
    message(FATAL_ERROR "packaging (${MODE}): no arcnetConfig.cmake under ${prefix}")
  endif()
  list(APPEND consumer_args -DCMAKE_PREFIX_PATH=${prefix})
elseif(MODE STREQUAL "add_subdirectory")
  list(APPEND consumer_args -DARCNET_SOURCE_DIR=${ARCNET_SOURCE_DIR})
  if(DEFINED ARCNET_CUDA)
    list(APPEND consumer_args -DARCNET_CUDA=${ARCNET_CUDA})
  endif()
else()
  message(FATAL_ERROR "run_consumer.cmake: MODE must be find_package or add_subdirectory, got '${MODE}'")
endif()

run_step("configure the consumer" ${CMAKE_COMMAND} -S ${ARCNET_SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/build
         ${consumer_args})
if(MODE STREQUAL "find_package")
  # The package must come from the prefix, not from the source or build tree.
  file(STRINGS ${WORK_DIR}/build/CMakeCache.txt found REGEX "^arcnet_DIR:")
  string(FIND "${found}" "${prefix}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "packaging (${MODE}): the consumer found arcnet outside ${prefix}: ${found}")
  endif()
  # Nothing in the consumer may point into the source tree.
  set(flags_file ${WORK_DIR}/build/CMakeFiles/app.dir/flags.make)  # Makefile generators only
  if(EXISTS ${flags_file})
    file(STRINGS ${flags_file} flags REGEX "INCLUDES")
    string(FIND "${flags}" "${ARCNET_SOURCE_DIR}/include" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "packaging (${MODE}): the consumer includes the source tree: ${flags}")
    endif()
  endif()
endif()
run_step("build the consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run_step("run the consumer" ${WORK_DIR}/build/app ${WORK_DIR})
message(STATUS "${step_output}")
