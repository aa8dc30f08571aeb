# cmake/install.cmake — installs what a packager expects beside the binary:
# the systemd unit, the default configuration and the man pages.
# Included (OPTIONAL) by the top CMakeLists.txt, after GNUInstallDirs.
#
# The prefix can change at install time (`cmake --install build --prefix
# /tmp/x`), so every path that depends on it — the unit's ExecStart, the
# sysconf and unit directories — is worked out by cmake/install-script.cmake
# at install time from the real CMAKE_INSTALL_PREFIX, not from the
# configure-time GNUInstallDirs FULL_ variables.  That script also decides at
# install time which optional files (conf/pipeline.conf, man/pipeline.conf.5,
# written by others) exist, so a tree configured before they landed installs
# them all the same.
#
#   PL_SYSTEMD_UNITDIR  unit directory; empty (default) = pkg-config systemd's
#                       systemdsystemunitdir when the prefix is /usr, else
#                       PREFIX/lib/systemd/system.

set(PL_SYSTEMD_UNITDIR "" CACHE PATH
    "Where to install pipelined.service (empty: chosen from the install prefix)")

# Asked once at configure time; used only when the install prefix is /usr.
set(pl_usr_unitdir "/lib/systemd/system")
if(PKG_CONFIG_FOUND)
  pkg_get_variable(pl_pc_unitdir systemd systemdsystemunitdir)
  if(pl_pc_unitdir)
    set(pl_usr_unitdir "${pl_pc_unitdir}")
  endif()
endif()

install(CODE "
  set(pl_srcdir [[${CMAKE_SOURCE_DIR}]])
  set(pl_bindir [[${CMAKE_INSTALL_BINDIR}]])
  set(pl_sysconfdir [[${CMAKE_INSTALL_SYSCONFDIR}]])
  set(pl_mandir [[${CMAKE_INSTALL_MANDIR}]])
  set(pl_unitdir [[${PL_SYSTEMD_UNITDIR}]])
  set(pl_usr_unitdir [[${pl_usr_unitdir}]])
  set(pl_workdir [[${CMAKE_BINARY_DIR}/pl-install]])
  include([[${CMAKE_CURRENT_LIST_DIR}/install-script.cmake]])
")
