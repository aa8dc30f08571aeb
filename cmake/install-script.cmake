# cmake/install-script.cmake — the install-time half of cmake/install.cmake
# (read that first).  Runs inside cmake_install.cmake, where
# CMAKE_INSTALL_PREFIX is the prefix actually being installed to; the pl_*
# variables come from the configure step.  file(INSTALL) applies DESTDIR and
# adds each file to install_manifest.txt.

# GNUInstallDirs' absolute form of DIR (relative to the prefix unless it is
# already absolute).  SPECIAL marks sysconfdir-like directories, which live
# in /etc for prefix /usr and /etc/opt/NAME for prefix /opt/NAME.
function(pl_full_dir out dir special)
  set(p "${CMAKE_INSTALL_PREFIX}")
  string(REGEX REPLACE "/+$" "" p "${p}")
  if(IS_ABSOLUTE "${dir}")
    set(full "${dir}")
  elseif(special AND p STREQUAL "/usr")
    set(full "/${dir}")
  elseif(special AND p MATCHES "^/opt/")
    set(full "/${dir}${p}")
  elseif(p STREQUAL "")
    set(full "/${dir}")
  else()
    set(full "${p}/${dir}")
  endif()
  set(${out} "${full}" PARENT_SCOPE)
endfunction()

pl_full_dir(CMAKE_INSTALL_FULL_BINDIR "${pl_bindir}" FALSE)
pl_full_dir(CMAKE_INSTALL_FULL_SYSCONFDIR "${pl_sysconfdir}" TRUE)
pl_full_dir(pl_full_mandir "${pl_mandir}" FALSE)

if(pl_unitdir)
  pl_full_dir(pl_full_unitdir "${pl_unitdir}" FALSE)
elseif(CMAKE_INSTALL_PREFIX MATCHES "^/usr/?$")
  set(pl_full_unitdir "${pl_usr_unitdir}")
else()
  pl_full_dir(pl_full_unitdir "lib/systemd/system" FALSE)
endif()

# The unit: ExecStart and -c name the installed binary and configuration.
configure_file("${pl_srcdir}/systemd/pipelined.service.in"
               "${pl_workdir}/pipelined.service" @ONLY)
file(INSTALL DESTINATION "${pl_full_unitdir}" TYPE FILE
     FILES "${pl_workdir}/pipelined.service")

# The system user and group the unit runs as (User=/Group=), made by
# systemd-sysusers at boot or by `systemd-sysusers` after installing.
if(CMAKE_INSTALL_PREFIX MATCHES "^/usr/?$")
  set(pl_sysusersdir "/usr/lib/sysusers.d")
else()
  pl_full_dir(pl_sysusersdir "lib/sysusers.d" FALSE)
endif()
file(INSTALL DESTINATION "${pl_sysusersdir}" TYPE FILE
     RENAME pipelined.conf FILES "${pl_srcdir}/systemd/pipelined.sysusers")

# The default configuration.  An operator's edited copy is never replaced:
# the shipped one goes beside it as pipeline.conf.dist.
set(pl_conf "${pl_srcdir}/conf/pipeline.conf")
set(pl_confdir "${CMAKE_INSTALL_FULL_SYSCONFDIR}/pipelined")
if(EXISTS "${pl_conf}")
  if(EXISTS "$ENV{DESTDIR}${pl_confdir}/pipeline.conf")
    file(INSTALL DESTINATION "${pl_confdir}" TYPE FILE
         RENAME pipeline.conf.dist FILES "${pl_conf}")
    message(STATUS "Kept existing ${pl_confdir}/pipeline.conf; "
                   "the shipped one is pipeline.conf.dist")
  else()
    file(INSTALL DESTINATION "${pl_confdir}" TYPE FILE FILES "${pl_conf}")
  endif()
else()
  message(WARNING "${pl_conf} does not exist: no default configuration installed")
endif()

# Man pages by section: NAME.N goes to MANDIR/manN.
file(GLOB pl_man_pages "${pl_srcdir}/man/*.[1-9]")
foreach(page ${pl_man_pages})
  string(REGEX MATCH "[1-9]$" section "${page}")
  file(INSTALL DESTINATION "${pl_full_mandir}/man${section}" TYPE FILE
       FILES "${page}")
endforeach()
