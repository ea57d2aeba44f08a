# sink_add_plugin(<name> SOURCES <src>...)
#
# Builds a sink plugin: a MODULE library named <name>.so (no "lib" prefix),
# compiled with hidden visibility and linked so that it exports exactly one
# symbol, sink_plugin_entry, and leaves no symbol unresolved.
# Used by sink's own plugins and, installed, by third-party ones.
set(_SINK_PLUGIN_VERSION_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/sink_plugin.map")

function(sink_add_plugin name)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "sink_add_plugin(${name}): no SOURCES given")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_libraries(${name} PRIVATE sink::plugin_sdk)
  target_link_options(${name} PRIVATE -Wl,--no-undefined -Wl,--version-script=${_SINK_PLUGIN_VERSION_SCRIPT})
  set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${_SINK_PLUGIN_VERSION_SCRIPT})
endfunction()
