# tests/lib/usermgr.sh — a real systemd user manager for integration tests.
#
# Sourced by a script already running in a private mount namespace
# (`unshare -m --propagation private`): a tmpfs over /run/systemd makes
# systemd believe it is booted with systemd (/run/systemd/system) without
# touching the host's, XDG_RUNTIME_DIR and HOME point into the test folder,
# and `systemctl --user` reaches the manager through its private socket in
# XDG_RUNTIME_DIR.  Worked out on Debian 12's systemd 252.
#
#   pl_usermgr_mount_run   the tmpfs over /run/systemd (pl_usermgr_start
#                          does it when not done yet)
#   pl_usermgr_start DIR   start the manager with DIR/xdg, DIR/home, log in
#                          DIR/manager.log; wait until it runs
#   pl_usermgr_stop        stop it (TERM, bounded wait, then KILL)
#   plsc ARGS...           systemctl --user, bounded in time
#   pl_unit_dir            where user units go
#   pl_usermgr_add_user NAME ID   a system user and group NAME (uid = gid =
#                          ID) in this namespace only, so that a unit's
#                          User=/Group= resolve (root's manager applies them)

PL_USERMGR_PID=

plsc() {
	timeout "${PL_SYSTEMCTL_TIMEOUT:-120}" systemctl --user --no-pager --no-ask-password "$@"
}

pl_unit_dir() {
	echo "$HOME/.config/systemd/user"
}

# pl_user_unit RENDERED OUT [keep-user]: the rendered unit without what a
# user manager cannot apply (the *Directory= settings, the namespace and
# capability sandboxing; User=/Group= unless keep-user is given, which needs
# them to exist: pl_usermgr_add_user).  The seccomp part stays, so the
# daemon must live with it, except under a sanitizer build: LeakSanitizer
# needs ptrace.
pl_user_unit() {
	local drop='DynamicUser|StateDirectory|StateDirectoryMode|RuntimeDirectoryMode|RuntimeDirectory|ConfigurationDirectory|CapabilityBoundingSet|AmbientCapabilities|PrivateUsers|PrivateTmp|PrivateDevices|PrivateMounts|DevicePolicy|ProtectSystem|ProtectHome|ProtectClock|ProtectControlGroups|ProtectHostname|ProtectKernelLogs|ProtectKernelModules|ProtectKernelTunables|ProtectProc|ProcSubset|RemoveIPC'
	[[ ${3:-} == keep-user ]] || drop+='|User|Group'
	if [[ -n ${PL_SANITIZE:-} ]]; then
		drop+='|NoNewPrivileges|SystemCallFilter|SystemCallArchitectures|SystemCallErrorNumber|MemoryDenyWriteExecute|LockPersonality|RestrictNamespaces|RestrictAddressFamilies|RestrictRealtime|RestrictSUIDSGID'
		pl_note "PL_SANITIZE=$PL_SANITIZE: seccomp sandbox left out (LeakSanitizer needs ptrace)"
	fi
	grep -Ev "^($drop)=" "$1" > "$2" || pl_fail "cannot write $2"
}

# Copies of /etc/passwd and /etc/group with NAME added, bind-mounted over
# the real ones: only this private mount namespace sees the user.
pl_usermgr_add_user() {
	local name=$1 id=$2 dir
	dir=$(mktemp -d /tmp/pl-users.XXXXXX) || pl_fail "mktemp"
	cp /etc/passwd /etc/group "$dir/" || pl_fail "cannot copy /etc/passwd and /etc/group"
	echo "$name:x:$id:$id:pipelined test user:/nonexistent:/usr/sbin/nologin" >> "$dir/passwd"
	echo "$name:x:$id:" >> "$dir/group"
	chmod 0644 "$dir/passwd" "$dir/group"
	mount --bind "$dir/passwd" /etc/passwd && mount --bind "$dir/group" /etc/group ||
		pl_fail "cannot bind-mount a passwd and group with $name (not in a private mount namespace?)"
	rm -rf "$dir"
}

pl_usermgr_running() {
	local s
	s=$(timeout 5 systemctl --user is-system-running 2> /dev/null)
	[[ $s == running || $s == degraded ]]
}

# The private /run/systemd, once: a test that starts something else there
# first (tests/it_journal.sh: journald's sockets) calls this before
# pl_usermgr_start, which then keeps that tmpfs instead of hiding it.
PL_USERMGR_RUN_MOUNTED=
pl_usermgr_mount_run() {
	[[ -n $PL_USERMGR_RUN_MOUNTED ]] && return 0
	mount -t tmpfs -o mode=0755 tmpfs /run/systemd ||
		pl_fail "cannot mount a tmpfs over /run/systemd (not in a private mount namespace?)"
	mkdir -p /run/systemd/system || pl_fail "mkdir /run/systemd/system"
	PL_USERMGR_RUN_MOUNTED=1
}

pl_usermgr_start() {
	local dir=$1
	[[ -x /lib/systemd/systemd ]] || pl_fail "/lib/systemd/systemd is missing"
	pl_usermgr_mount_run
	mkdir -p "$dir/xdg" "$dir/home/.config/systemd/user" || pl_fail "mkdir in $dir"
	chmod 0700 "$dir/xdg"
	export XDG_RUNTIME_DIR=$dir/xdg HOME=$dir/home
	unset DBUS_SESSION_BUS_ADDRESS
	/lib/systemd/systemd --user > "$dir/manager.log" 2>&1 &
	PL_USERMGR_PID=$!
	echo "$PL_USERMGR_PID" > "$dir/manager.pid"
	pl_wait 30 "the user manager to run (systemctl --user is-system-running)" \
		pl_usermgr_alive_and_running
}

pl_usermgr_alive_and_running() {
	kill -0 "$PL_USERMGR_PID" 2> /dev/null ||
		pl_fail "the user manager exited: $(tail -5 "$XDG_RUNTIME_DIR/../manager.log" 2>/dev/null)"
	pl_usermgr_running
}

# Best effort and bounded: a TERM lets the manager stop its units first.
pl_usermgr_stop() {
	local pid=$PL_USERMGR_PID i
	[[ -n $pid ]] || return 0
	PL_USERMGR_PID=
	kill -TERM "$pid" 2> /dev/null || return 0
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2> /dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2> /dev/null; then
		echo "user manager $pid did not exit after TERM; killing it" >&2
		kill -KILL "$pid" 2> /dev/null
	fi
	wait "$pid" 2> /dev/null
	return 0
}
