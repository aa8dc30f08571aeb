# tests/lib/common.sh — shell helpers shared by the tests/it_*.sh scripts.
#
# Sourced, not run.  The integration tests get PIPELINED, PL_SRCDIR and
# PL_BUILDDIR from ctest; these helpers keep their failure messages uniform
# ("FAIL: what") and make every wait bounded: pl_wait polls a condition
# instead of sleeping a fixed time, and says what it waited for when it
# gives up.
#
# One rule for a test this machine cannot run (tests/pltest.py follows it
# too, through the same probes): ask the probe of the capability, then
#
#	if why=$(pl_cannot_unshare_mount); then pl_skip "$why"; fi
#
# pl_skip prints "SKIP: reason" and exits 77, which tests/CMakeLists.txt
# declares as ctest's SKIP_RETURN_CODE: ctest reports "Skipped", never
# "Passed".  With PL_REQUIRE_ALL=1 (scripts/test sets it: the CI machine can
# run everything) a skip is a failure instead.  A probe prints why the
# capability is missing and succeeds, or prints nothing and fails; each
# capability has exactly one probe, so tests cannot disagree about it.

pl_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

pl_skip() {
	echo "SKIP: $*"
	if [[ ${PL_REQUIRE_ALL:-} == 1 ]]; then
		echo "FAIL: PL_REQUIRE_ALL=1: every test must run on this machine (PL_REQUIRE_ALL=0 allows skips)" >&2
		exit 1
	fi
	exit 77
}

# pl_cannot_unshare_mount: a private mount namespace with a tmpfs mounted in
# it (what it_service, it_journal and it_faults' full disk build on).  Tried
# for real: being root is not enough in a container without CAP_SYS_ADMIN.
pl_cannot_unshare_mount() {
	local dir out
	if ((EUID != 0)); then
		echo "needs root for a private mount namespace (unshare -m) with a tmpfs in it"
		return 0
	fi
	if ! command -v unshare > /dev/null; then
		echo "unshare(1) is not installed (util-linux)"
		return 0
	fi
	if ! dir=$(mktemp -d "${TMPDIR:-/tmp}/pl-probe.XXXXXX"); then
		echo "cannot make a folder to probe unshare -m in"
		return 0
	fi
	# the mount lives and dies with the namespace: the host never sees it
	out=$(unshare -m --propagation private mount -t tmpfs -o size=1m tmpfs "$dir" 2>&1)
	local rc=$?
	rmdir "$dir"
	if ((rc != 0)); then
		echo "unshare -m with a tmpfs mount is not permitted here: ${out:-exit $rc}"
		return 0
	fi
	return 1
}

# pl_cannot_unshare_net: a private network namespace whose loopback can be
# brought up and given another address (it_e2e's redirect guard).
pl_cannot_unshare_net() {
	local out
	if ((EUID != 0)); then
		echo "needs root for a private network namespace (unshare -n)"
		return 0
	fi
	if ! command -v unshare > /dev/null || ! command -v ip > /dev/null; then
		echo "unshare(1) or ip(8) is not installed (util-linux, iproute2)"
		return 0
	fi
	if ! out=$(unshare -n /bin/sh -c 'ip link set lo up && ip addr add 198.51.100.7/32 dev lo' 2>&1); then
		echo "unshare -n with an address on lo is not permitted here: ${out:-failed}"
		return 0
	fi
	return 1
}

pl_note() {
	echo "--- $*"
}

# pl_wait SECONDS WHAT COMMAND...: run COMMAND every 50 ms until it
# succeeds; fail naming WHAT when SECONDS pass first.
pl_wait() {
	local limit=$1 what=$2
	shift 2
	local deadline=$((SECONDS + limit))
	until "$@"; do
		if ((SECONDS >= deadline)); then
			pl_fail "timed out after ${limit}s waiting for $what"
		fi
		sleep 0.05
	done
}

# pl_srcdir: the source tree (PL_SRCDIR, else the parent of tests/).
pl_srcdir() {
	if [[ -n ${PL_SRCDIR:-} ]]; then
		echo "$PL_SRCDIR"
	else
		(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	fi
}

# pl_render_unit OUT BINARY CONF: the unit from systemd/pipelined.service.in
# with ExecStart naming BINARY and -c CONF, as cmake/install.cmake would
# write it for an installed tree.
pl_render_unit() {
	local out=$1 bin=$2 conf=$3 src
	src="$(pl_srcdir)/systemd/pipelined.service.in"
	[[ -r $src ]] || pl_fail "unit template $src is missing"
	sed -e "s|@CMAKE_INSTALL_FULL_BINDIR@/pipelined|$bin|g" \
	    -e "s|@CMAKE_INSTALL_FULL_SYSCONFDIR@/pipelined/pipeline.conf|$conf|g" \
	    "$src" > "$out" || pl_fail "cannot write $out"
	if grep -q '@[A-Z_]*@' "$out"; then
		pl_fail "unit template has placeholders the tests do not know: $(grep -o '@[A-Z_]*@' "$out" | sort -u | tr '\n' ' ')"
	fi
}

# pl_executable_or_dummy DIR: $PIPELINED when it is an executable, else a
# dummy executable in DIR (verify only checks that ExecStart exists).
pl_executable_or_dummy() {
	if [[ -n ${PIPELINED:-} && -x $PIPELINED ]]; then
		echo "$PIPELINED"
		return
	fi
	printf '#!/bin/sh\nexit 0\n' > "$1/pipelined" && chmod +x "$1/pipelined" ||
		pl_fail "cannot make a dummy executable in $1"
	echo "NOTE: PIPELINED (${PIPELINED:-unset}) is not an executable; verifying with a dummy" >&2
	echo "$1/pipelined"
}
