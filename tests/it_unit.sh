#!/bin/bash
# it_unit.sh — the shipped systemd unit is valid and hardened.
#
# `systemd-analyze verify` on the unit as it would be installed (ExecStart
# pointing at the built daemon, since verify checks that the binary exists;
# the man pages of Documentation= looked up with man(1) in a tree made from
# man/), then `systemd-analyze security --offline=true`, whose overall
# exposure must stay at or below PL_MAX_EXPOSURE (1.2: the unit is meant to
# be that hardened, so a change that loosens its sandbox fails here).  Without man(1)
# (man-db) or systemd-analyze the test skips (exit 77) rather than verify
# less than it says.
set -u
. "$(dirname "$0")/lib/common.sh"

max=${PL_MAX_EXPOSURE:-1.2}
command -v systemd-analyze > /dev/null || pl_skip "systemd-analyze is not installed (systemd)"
command -v man > /dev/null ||
	pl_skip "man(1) is not installed (man-db; scripts/deps installs it): the unit's Documentation= cannot be verified"

tmp=$(mktemp -d) || pl_fail "mktemp"
trap 'rm -rf "$tmp"' EXIT
src=$(pl_srcdir)
bin=$(pl_executable_or_dummy "$tmp")
unit=$tmp/pipelined.service
pl_render_unit "$unit" "$bin" /etc/pipelined/pipeline.conf

# Documentation=man:… is checked with man(1) against a man tree made from
# man/: a page it names that man/ lacks fails verify.
mkdir -p "$tmp/man/man1" "$tmp/man/man5" "$tmp/man/man8"
for page in "$src"/man/*.[1-9]; do
	[[ -e $page ]] && cp "$page" "$tmp/man/man${page##*.}/"
done

pl_note "systemd-analyze verify --man=yes"
out=$(cd "$tmp" && MANPATH=$tmp/man systemd-analyze verify --man=yes "$unit" 2>&1)
rc=$?
if ((rc != 0)) || [[ -n $out ]]; then
	echo "$out" >&2
	pl_fail "systemd-analyze verify rejected the unit (exit $rc)"
fi

pl_note "systemd-analyze security --offline=true (at most $max)"
sec=$(cd "$tmp" && systemd-analyze security --offline=true --no-pager "$unit" 2>&1)
rc=$?
line=$(grep 'Overall exposure level' <<< "$sec")
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' <<< "$line")
if [[ -z $score ]]; then
	echo "$sec" >&2
	pl_fail "no 'Overall exposure level' in systemd-analyze security output (exit $rc)"
fi
if ! awk -v s="$score" -v m="$max" 'BEGIN { exit !(s + 0 <= m + 0) }'; then
	grep '✗' <<< "$sec" >&2
	pl_fail "exposure level $score is above $max"
fi
echo "PASS: unit verifies; exposure level $score (at most $max)"
