# arcnet::data (image decoding, transforms, datasets, loader): adds libjpeg-turbo's TurboJPEG,
# libpng, zlib (gzip IDX files) and threads. Included from arcnet_targets.cmake; created only
# when every dependency is found, so a user of the core alone needs none of them.
find_package(libjpeg-turbo QUIET)
find_package(PNG QUIET)
find_package(ZLIB QUIET)
find_package(Threads QUIET)
if(TARGET libjpeg-turbo::turbojpeg AND TARGET PNG::PNG AND TARGET ZLIB::ZLIB AND TARGET Threads::Threads)
  set(ARCNET_WITH_DATA ON)
  add_library(arcnet_data INTERFACE)
  add_library(arcnet::data ALIAS arcnet_data)
  target_link_libraries(arcnet_data INTERFACE arcnet libjpeg-turbo::turbojpeg PNG::PNG ZLIB::ZLIB Threads::Threads)
  set_target_properties(arcnet_data PROPERTIES EXPORT_NAME data)
  install(TARGETS arcnet_data EXPORT arcnetTargets)
else()
  set(ARCNET_WITH_DATA OFF)
  message(STATUS "arcnet: TurboJPEG, libpng, zlib or threads not found, so arcnet::data (image decoding, "
                 "datasets, loader) is not available; install libturbojpeg0-dev libpng-dev zlib1g-dev to get it")
endif()
