# arcnet::engine (the training loop, evaluation, checkpoints with training state, program
# options): arcnet::io + arcnet::data + Boost.Program_options, and arcnet::viz for plots when
# present. Included from arcnet_targets.cmake after them; created only when all are available.
find_package(Boost 1.74 QUIET COMPONENTS program_options)
if(ARCNET_WITH_IO AND ARCNET_WITH_DATA AND TARGET Boost::program_options)
  set(ARCNET_WITH_ENGINE ON)
  add_library(arcnet_engine INTERFACE)
  add_library(arcnet::engine ALIAS arcnet_engine)
  target_link_libraries(arcnet_engine INTERFACE arcnet_io arcnet_data Boost::program_options)
  if(ARCNET_WITH_VIZ)
    target_link_libraries(arcnet_engine INTERFACE arcnet_viz)
  endif()
  if(ARCNET_WITH_MPI)  # arcnet-train under mpirun: one rank per process
    target_link_libraries(arcnet_engine INTERFACE arcnet_mpi)
  endif()
  set_target_properties(arcnet_engine PROPERTIES EXPORT_NAME engine)
  install(TARGETS arcnet_engine EXPORT arcnetTargets)
else()
  set(ARCNET_WITH_ENGINE OFF)
  message(STATUS "arcnet: arcnet::engine (trainer, arcnet-train/test/retrieve) needs arcnet::io, arcnet::data and "
                 "Boost.Program_options; install libboost-program-options-dev to get it")
endif()
