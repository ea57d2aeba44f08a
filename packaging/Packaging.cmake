# Debian packages with `cpack -G DEB` (run in the build directory):
#   sink_<version>_<arch>.deb      binary (stripped), bundled plugins, man
#                                  pages, user docs, example configs,
#                                  /etc/sink/sink.yaml (conffile), a hardened
#                                  systemd unit, a logrotate snippet, and the
#                                  maintainer scripts (packaging/debian/)
#   sink-dbgsym_<version>_<arch>.ddeb  the binaries' debug information
#   sink-dev_<version>_<arch>.deb  the plugin SDK: header, CMake package, .pc,
#                                  plugin guide and examples
# Files with absolute destinations belong to the `packaging` component, which
# a plain `cmake --install --prefix DIR` never installs, so that command never
# writes outside DIR.
set(SINK_PACKAGING_DIR ${PROJECT_SOURCE_DIR}/packaging)

# Man pages are installed compressed, as Debian's policy asks (gzip -9n: no
# name or time stamp, so the same page always gives the same bytes).
set(SINK_MAN_PAGES sink.1 sink.yaml.5)
set(SINK_MAN_GZ)
foreach(page ${SINK_MAN_PAGES})
  set(gz ${PROJECT_BINARY_DIR}/man/${page}.gz)
  add_custom_command(OUTPUT ${gz}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
    COMMAND sh -c "gzip -9n -c \"$1\" >\"$2\"" sh ${SINK_PACKAGING_DIR}/man/${page} ${gz}
    DEPENDS ${SINK_PACKAGING_DIR}/man/${page} VERBATIM)
  list(APPEND SINK_MAN_GZ ${gz})
endforeach()
add_custom_target(man_pages ALL DEPENDS ${SINK_MAN_GZ})
install(FILES ${PROJECT_BINARY_DIR}/man/sink.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime)
install(FILES ${PROJECT_BINARY_DIR}/man/sink.yaml.5.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man5 COMPONENT runtime)
# What an operator reads travels with the runtime package.
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/analyzers.md
  ${PROJECT_SOURCE_DIR}/docs/outputs.md ${SINK_PACKAGING_DIR}/debian/copyright
  DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime)
install(FILES ${SINK_PACKAGING_DIR}/sink.yaml DESTINATION /etc/sink COMPONENT packaging EXCLUDE_FROM_ALL)
install(FILES ${SINK_PACKAGING_DIR}/sink.service DESTINATION /lib/systemd/system COMPONENT packaging
  EXCLUDE_FROM_ALL)
install(FILES ${SINK_PACKAGING_DIR}/logrotate RENAME sink DESTINATION /etc/logrotate.d COMPONENT packaging
  EXCLUDE_FROM_ALL)

set(CPACK_PACKAGE_NAME sink)
set(CPACK_PACKAGE_VENDOR "sink developers")
set(CPACK_PACKAGE_CONTACT "sink developers <sink-dev@lists.example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "network measurement sink: accepts TCP/TLS, never answers, records everything")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
# The binaries are stripped into the package and their debug information goes
# to sink-dbgsym (CPACK_STRIP_FILES would strip it before the split).
set(CPACK_DEBIAN_SINK_DEBUGINFO_PACKAGE ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime packaging dev)
set(CPACK_COMPONENT_RUNTIME_GROUP sink)
set(CPACK_COMPONENT_PACKAGING_GROUP sink)
set(CPACK_COMPONENT_DEV_GROUP sink-dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_SINK_PACKAGE_NAME sink)
set(CPACK_DEBIAN_SINK-DEV_PACKAGE_NAME sink-dev)
set(CPACK_DEBIAN_SINK_PACKAGE_SECTION net)
set(CPACK_DEBIAN_SINK-DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_SINK_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_SINK_PACKAGE_DEPENDS "adduser, nftables, iproute2")
set(CPACK_DEBIAN_SINK_PACKAGE_SUGGESTS "logrotate")
# The plugin guide refers to the output and analyzer docs, which sink ships.
set(CPACK_DEBIAN_SINK-DEV_PACKAGE_DEPENDS "sink (= ${PROJECT_VERSION}), cmake, g++")
set(CPACK_DEBIAN_SINK_PACKAGE_CONTROL_EXTRA
  ${SINK_PACKAGING_DIR}/debian/conffiles ${SINK_PACKAGING_DIR}/debian/postinst ${SINK_PACKAGING_DIR}/debian/prerm
  ${SINK_PACKAGING_DIR}/debian/postrm)
set(CPACK_DEBIAN_SINK_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
