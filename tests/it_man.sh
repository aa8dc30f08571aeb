#!/bin/bash
# it_man.sh — every man page in man/ lints clean.
#
# `mandoc -Tlint -W warning` must print nothing for each man/*.[1-9] (it
# knows mdoc and man), and `groff -ww -z` with the macro package the page
# uses must print nothing as well.  A missing page that the unit's
# Documentation= names is an error too.  Without groff the mandoc half
# still runs, and the test then skips (exit 77) saying groff was not run.
set -u
. "$(dirname "$0")/lib/common.sh"

command -v mandoc > /dev/null || pl_skip "mandoc is not installed (scripts/deps installs it)"
src=$(pl_srcdir)
shopt -s nullglob
pages=("$src"/man/*.[1-9])
((${#pages[@]} > 0)) || pl_fail "no man pages in $src/man"
[[ -e $src/man/pipelined.8 ]] || pl_fail "$src/man/pipelined.8 is missing"

groff=$(command -v groff)
bad=0
for page in "${pages[@]}"; do
	out=$(mandoc -Tlint -W warning "$page" 2>&1)
	if [[ -n $out ]]; then
		echo "$out" >&2
		echo "FAIL: mandoc lint: ${page#"$src"/}" >&2
		bad=1
	fi
	if [[ -n $groff ]]; then
		if grep -q '^\.Dd' "$page"; then macros=-mdoc; else macros=-man; fi
		out=$(groff -ww -z "$macros" "$page" 2>&1)
		if [[ -n $out ]]; then
			echo "$out" >&2
			echo "FAIL: groff $macros: ${page#"$src"/}" >&2
			bad=1
		fi
	fi
	((bad)) || echo "ok: ${page#"$src"/}"
done
((bad == 0)) || pl_fail "man pages do not lint clean"
[[ -n $groff ]] || pl_skip "groff is not installed (groff-base): ${#pages[@]} man page(s) lint clean with mandoc, groff -ww not run"
echo "PASS: ${#pages[@]} man page(s) lint clean"
