# tests/lib/common.sh — shell helpers shared by the tests/it_*.sh scripts.
#
# Sourced, not run.  The integration tests get PIPELINED, PL_SRCDIR and
# PL_BUILDDIR from ctest; these helpers keep their failure messages uniform
# ("FAIL: what") and make every wait bounded: pl_wait polls a condition
# instead of sleeping a fixed time, and says what it waited for when it
# gives up.

pl_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

pl_skip() {
	echo "SKIP: $*"
	exit 0
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
