# Debian packages with `cpack -G DEB` (run in the build directory):
#   sink_<version>_<arch>.deb      binary, bundled plugins, man pages, example
#                                  configs, /etc/sink/sink.yaml (conffile), a
#                                  hardened systemd unit, a logrotate snippet
#   sink-dev_<version>_<arch>.deb  the plugin SDK: header, CMake package, .pc,
#                                  plugin guide and examples
# Files with absolute destinations belong to the `packaging` component, which
# a plain `cmake --install --prefix DIR` never installs, so that command never
# writes outside DIR.
set(SINK_PACKAGING_DIR ${PROJECT_SOURCE_DIR}/packaging)

install(FILES ${SINK_PACKAGING_DIR}/man/sink.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime)
install(FILES ${SINK_PACKAGING_DIR}/man/sink.yaml.5 DESTINATION ${CMAKE_INSTALL_MANDIR}/man5 COMPONENT runtime)
install(FILES ${SINK_PACKAGING_DIR}/sink.yaml DESTINATION /etc/sink COMPONENT packaging EXCLUDE_FROM_ALL)
install(FILES ${SINK_PACKAGING_DIR}/sink.service DESTINATION /lib/systemd/system COMPONENT packaging
  EXCLUDE_FROM_ALL)
install(FILES ${SINK_PACKAGING_DIR}/logrotate RENAME sink DESTINATION /etc/logrotate.d COMPONENT packaging
  EXCLUDE_FROM_ALL)

set(CPACK_PACKAGE_NAME sink)
set(CPACK_PACKAGE_VENDOR "sink developers")
set(CPACK_PACKAGE_CONTACT "sink developers <sink@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "network measurement sink: accepts TCP/TLS, never answers, records everything")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_STRIP_FILES ON)
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
set(CPACK_DEBIAN_SINK-DEV_PACKAGE_DEPENDS "cmake, g++")
set(CPACK_DEBIAN_SINK_PACKAGE_CONTROL_EXTRA
  ${SINK_PACKAGING_DIR}/debian/conffiles ${SINK_PACKAGING_DIR}/debian/postinst ${SINK_PACKAGING_DIR}/debian/postrm)
set(CPACK_DEBIAN_SINK_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
