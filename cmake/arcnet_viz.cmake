# arcnet::viz (training curves and retrieval grids as PNG / SVG): adds cairo, found through
# pkg-config. Included from arcnet_targets.cmake after arcnet_data.cmake; created only when
# cairo is found and arcnet::data exists (a grid cell is an arcnet::data::image).
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  # GLOBAL: a project that add_subdirectory()s arcnet links arcnet::viz from its own directories.
  pkg_check_modules(CAIRO QUIET IMPORTED_TARGET GLOBAL cairo)
endif()
if(TARGET PkgConfig::CAIRO AND TARGET arcnet::data)
  set(ARCNET_WITH_VIZ ON)
  add_library(arcnet_viz INTERFACE)
  add_library(arcnet::viz ALIAS arcnet_viz)
  target_link_libraries(arcnet_viz INTERFACE arcnet arcnet_data PkgConfig::CAIRO)
  set_target_properties(arcnet_viz PROPERTIES EXPORT_NAME viz)
  install(TARGETS arcnet_viz EXPORT arcnetTargets)
elseif(NOT TARGET arcnet::data)
  set(ARCNET_WITH_VIZ OFF)
  message(STATUS "arcnet: arcnet::data is not available, so neither is arcnet::viz (plots, image grids), "
                 "which draws arcnet::data images")
else()
  set(ARCNET_WITH_VIZ OFF)
  message(STATUS "arcnet: cairo (pkg-config cairo) not found, so arcnet::viz (plots, image grids as PNG / SVG) "
                 "is not available; install pkg-config libcairo2-dev to get it")
endif()
