#!/bin/bash
# it_unit.sh — the shipped systemd unit is valid and hardened.
#
# `systemd-analyze verify` on the unit as it would be installed (ExecStart
# pointing at the built daemon, since verify checks that the binary exists;
# the man pages of Documentation= looked up in the source tree), then
# `systemd-analyze security --offline=true`, whose overall exposure must stay
# at or below PL_MAX_EXPOSURE (1.2, the contract in interface.md).
set -u
. "$(dirname "$0")/lib/common.sh"

max=${PL_MAX_EXPOSURE:-1.2}
command -v systemd-analyze > /dev/null || pl_fail "systemd-analyze is not installed"

tmp=$(mktemp -d) || pl_fail "mktemp"
trap 'rm -rf "$tmp"' EXIT
src=$(pl_srcdir)
bin=$(pl_executable_or_dummy "$tmp")
unit=$tmp/pipelined.service
pl_render_unit "$unit" "$bin" /etc/pipelined/pipeline.conf

# Documentation=man:… is checked with man(1) against a man tree made from
# man/; while a page named there is not written yet, verify skips man pages.
man_opt=--man=no
mkdir -p "$tmp/man/man5" "$tmp/man/man8"
for page in "$src"/man/*.[1-9]; do
	[[ -e $page ]] && cp "$page" "$tmp/man/man${page##*.}/"
done
if command -v man > /dev/null && [[ -e $tmp/man/man8/pipelined.8 && -e $tmp/man/man5/pipeline.conf.5 ]]; then
	man_opt=--man=yes
else
	pl_note "man pipelined(8) or pipeline.conf(5) missing (or no man(1)): verify --man=no"
fi

pl_note "systemd-analyze verify $man_opt"
out=$(cd "$tmp" && MANPATH=$tmp/man systemd-analyze verify "$man_opt" "$unit" 2>&1)
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
