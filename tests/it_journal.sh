#!/bin/bash
# it_journal.sh — the daemon's native journal logging, proved against a real
# systemd-journald.
#
# src/log.c sends entries with fields (PRIORITY, SYSLOG_IDENTIFIER, JOB,
# ITEM, STAGE, URL, ERRNO) through the journal protocol when JOURNAL_STREAM
# names its stderr and journald's socket is there, and writes "<N>" lines to
# stderr otherwise.  Nothing here runs journald, so the test starts its own:
# in a private mount namespace, tmpfs over /run/systemd, /run/log and
# /var/log/journal keep the host's untouched, a drop-in in the private
# /run/systemd/journald.conf.d makes it volatile and keeps it away from
# /dev/kmsg.  A systemd user manager started after it connects services'
# stdout/stderr to journald and sets JOURNAL_STREAM, as on a real system.
#
#   1. the shipped unit (rendered as in it_service.sh) runs a job with one
#      good item and two failing ones (download: outside file_root; resize:
#      not an image); journalctl -D reads back the entries: the failures
#      carry PRIORITY=4, JOB, ITEM=line, STAGE, URL, ERRNO and the reason,
#      the startup message no item fields, all came by the native protocol
#      (_TRANSPORT=journal), none is a "<N>"-prefixed line or carries the
#      stderr "job J item N (URL)" context, and nothing came through the
#      stderr stream (journald strips "<N>" from stream lines itself, so
#      _TRANSPORT is what tells the two paths apart);
#   2. controls, the daemon run directly with --once and stderr to a file
#      while journald runs: without JOURNAL_STREAM, and with a stale one
#      naming another file, lines are "<N>"-prefixed and nothing reaches the
#      journal; with JOURNAL_STREAM naming that very file, entries go to the
#      journal instead (the dev:inode rule of log.c, both ways).
#
# Needs root and a mount namespace with a tmpfs in it (skipped, exit 77,
# without them: pl_cannot_unshare_mount).  Every wait is bounded; journald,
# the manager and the daemon are stopped on every exit.  Under PL_SANITIZE
# the unit's seccomp sandbox is left out, as in it_service.sh (LeakSanitizer
# needs ptrace); everything else runs.  PL_KEEP=1 keeps the test folder.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/usermgr.sh"

JOURNALD=/lib/systemd/systemd-journald

if [[ -z ${PL_IT_JOURNAL_INNER:-} ]]; then
	if why=$(pl_cannot_unshare_mount); then pl_skip "$why"; fi
	[[ -x $JOURNALD ]] || pl_skip "$JOURNALD is not installed"
	command -v journalctl > /dev/null || pl_skip "journalctl is not installed"
	[[ -n ${PIPELINED:-} && -x $PIPELINED ]] ||
		pl_fail "PIPELINED (${PIPELINED:-unset}) is not an executable"
	tmp=$(mktemp -d /tmp/pl-it-journal.XXXXXX) || pl_fail "mktemp"
	PL_IT_JOURNAL_INNER=1 PL_TESTDIR=$tmp \
		timeout -k 10 "${PL_IT_JOURNAL_TIMEOUT:-300}" \
		unshare -m --propagation private /bin/bash "$0"
	rc=$?
	# What the inner script could not stop (killed by timeout).
	for f in main.pid manager.pid journald.pid; do
		if [[ -s $tmp/$f ]] && kill -0 "$(cat "$tmp/$f")" 2> /dev/null; then
			kill -KILL "$(cat "$tmp/$f")" 2> /dev/null
		fi
	done
	((rc == 124)) && echo "FAIL: the test ran out of time" >&2
	if [[ ${PL_KEEP:-} ]]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
	exit "$rc"
fi

# ---- inside the private mount namespace ----
T=$PL_TESTDIR
CONF=$T/pipeline.conf
# Not pipelined.service: cgroups are not namespaced, so every user manager
# started by a test puts a unit of that name in the same cgroup
# (/app.slice/pipelined.service), and stopping it in one test would kill the
# daemon of another test running at the same time (ctest -j, other trees).
UNIT=pl-it-journal-${T##*.}.service
JOURNAL_DIR=/run/log/journal
JOURNALD_PID=

journald_stop() {
	local pid=$JOURNALD_PID i
	[[ -n $pid ]] || return 0
	JOURNALD_PID=
	kill -TERM "$pid" 2> /dev/null || return 0
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2> /dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2> /dev/null && kill -KILL "$pid" 2> /dev/null
	wait "$pid" 2> /dev/null
	return 0
}

on_exit() {
	local rc=$?
	if ((rc != 0)); then
		echo "=== systemctl --user status pipelined" >&2
		timeout 10 systemctl --user --no-pager status "$UNIT" >&2 2>&1
		echo "=== journal, SYSLOG_IDENTIFIER=pipelined (tail)" >&2
		timeout 10 journalctl -D "$JOURNAL_DIR" --no-pager -o verbose \
			SYSLOG_IDENTIFIER=pipelined 2>&1 | tail -60 >&2
		echo "=== journald's own output (tail)" >&2
		tail -20 "$T/journald.log" >&2 2> /dev/null
		echo "=== manager log (tail)" >&2
		tail -20 "$T/manager.log" >&2 2> /dev/null
	fi
	pl_usermgr_stop
	journald_stop
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---- journald of our own ----
# mount_private DIR: a tmpfs over DIR, so journald writes nothing of the host's
mount_private() {
	mount -t tmpfs -o mode=0755 tmpfs "$1" ||
		pl_fail "cannot mount a tmpfs over $1 (not in a private mount namespace?)"
}
journald_ready() {
	kill -0 "$JOURNALD_PID" 2> /dev/null ||
		pl_fail "systemd-journald exited: $(tail -5 "$T/journald.log")"
	[[ -S /run/systemd/journal/socket && -S /run/systemd/journal/stdout ]]
}

pl_note "systemd-journald in a private /run/systemd, /run/log"
pl_usermgr_mount_run
mkdir -p /run/log || pl_fail "mkdir /run/log"
mount_private /run/log
[[ -d /var/log/journal ]] && mount_private /var/log/journal
mkdir -p /run/systemd/journal /run/systemd/journald.conf.d || pl_fail "mkdir in /run/systemd"
# Volatile, no kernel log, no forwarding, no rate limit: the journal holds
# exactly what the test's processes sent.
cat > /run/systemd/journald.conf.d/pl-test.conf <<-EOF || pl_fail "cannot write the journald drop-in"
[Journal]
Storage=volatile
ReadKMsg=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
RateLimitIntervalSec=0
EOF
SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=info "$JOURNALD" > "$T/journald.log" 2>&1 &
JOURNALD_PID=$!
echo "$JOURNALD_PID" > "$T/journald.pid"
pl_wait 20 "journald's sockets /run/systemd/journal/{socket,stdout}" journald_ready

# journal_json FILE ARGS...: the entries matching ARGS (journalctl
# matches), one JSON object a line; none is an empty FILE.
journal_json() {
	local out=$1
	shift
	timeout 20 journalctl -D "$JOURNAL_DIR" --no-pager -o json "$@" > "$out" 2> "$out.err" ||
		pl_fail "journalctl -D $JOURNAL_DIR $*: $(cat "$out.err")"
}
# sync_marker: journald has handled everything sent before this call (the
# marker goes through the same datagram socket the daemon writes to).
marker_n=0
marker_seen() {
	journal_json "$T/marker.json" "PL_MARKER=$1" && [[ -s $T/marker.json ]]
}
sync_marker() {
	marker_n=$((marker_n + 1))
	printf 'MESSAGE=it_journal marker %s\nPL_MARKER=%s\n' "$marker_n" "$marker_n" |
		logger --journald || pl_fail "logger --journald cannot write to journald"
	pl_wait 20 "journal marker $marker_n to be readable" marker_seen "$marker_n"
}
sync_marker

# ---- test data ----
mkdir -p "$T/images" "$T/out" "$T/run" "$T/spool" "$T/spool2" || pl_fail "mkdir in $T"
vips black "$T/x.v" 120 80 --bands 3 && vips copy "$T/x.v" "$T/images/black.jpg" ||
	pl_fail "cannot make a test image with vips"
echo "not an image" > "$T/images/text.jpg" && echo "outside" > "$T/outside.jpg" ||
	pl_fail "cannot write test files"

# write_conf FILE SPOOL
write_conf() {
	cat > "$1" <<-EOF || pl_fail "cannot write $1"
	# it_journal.sh test configuration
	spool = "$2";
	runtime = "$T/run";
	download = {
	  workers = 1;
	  queue = 4;
	  timeout = 20.0;
	  protocols = [ "file" ];
	  file_root = "$T/images";
	};
	resize = {
	  workers = 1;
	  queue = 4;
	  variants = (
	    { name = "small"; width = 32; height = 32; fit = "inside";
	      format = "jpeg"; quality = 80; }
	  );
	};
	upload = {
	  workers = 1;
	  queue = 4;
	  url = "file://$T/out/{name}-{variant}.{ext}";
	};
	EOF
}
write_conf "$CONF" "$T/spool"
write_conf "$T/control.conf" "$T/spool2"
out=$("$PIPELINED" -c "$CONF" -t 2>&1) ||
	pl_fail "pipelined -c $CONF -t does not accept the test configuration: $out"

# submit SPOOL NAME: the test job, line 2 good, 4 outside file_root, 5 not an image
GOOD=file://$T/images/black.jpg OUTSIDE=file://$T/outside.jpg NOTIMG=file://$T/images/text.jpg
submit() {
	mkdir -p "$1/tmp" "$1/new" &&
		printf '%s\n' "# it_journal" "$GOOD" "" "$OUTSIDE" "$NOTIMG" > "$1/tmp/$2" &&
		mv "$1/tmp/$2" "$1/new/$2" || pl_fail "cannot submit $2 to $1"
}
job_failed() {
	[[ -e $T/spool/done/$1 ]] && pl_fail "job $1 ended in done/ though two items must fail"
	[[ -e $T/spool/failed/$1 && -e $T/spool/failed/$1.result ]]
}

# ---- 1. the service: native entries with fields ----
pl_usermgr_start "$T"
unitfile=$(pl_unit_dir)/$UNIT
pl_render_unit "$T/rendered.service" "$PIPELINED" "$CONF"
pl_user_unit "$T/rendered.service" "$unitfile"
grep -Eq '^Standard(Output|Error)=' "$unitfile" &&
	pl_fail "the unit redirects stdout/stderr; this test needs the default (the journal)"
plsc daemon-reload || pl_fail "systemctl --user daemon-reload"
prop() { plsc show -p "$1" --value "$UNIT"; }

pl_note "systemctl --user start, a job with items 2 (good), 4 and 5 (failing)"
plsc start "$UNIT" || pl_fail "systemctl --user start $UNIT failed"
mainpid=$(prop MainPID)
[[ $mainpid =~ ^[1-9][0-9]*$ ]] || pl_fail "no MainPID ($mainpid)"
echo "$mainpid" > "$T/main.pid"
stream=$(tr '\0' '\n' < "/proc/$mainpid/environ" | sed -n 's/^JOURNAL_STREAM=//p')
[[ -n $stream ]] || pl_fail "the manager did not set JOURNAL_STREAM for the service"
[[ $stream == "$(stat -L -c '%d:%i' "/proc/$mainpid/fd/2")" ]] ||
	pl_fail "JOURNAL_STREAM=$stream does not name the service's stderr"
submit "$T/spool" job1
pl_wait 60 "job1 in spool/failed with its result" job_failed job1
sync_marker
journal_json "$T/service.json" SYSLOG_IDENTIFIER=pipelined
journal_json "$T/job1.json" JOB=job1
journal_json "$T/stream.json" _TRANSPORT=stdout "_PID=$mainpid"

/usr/bin/python3 - "$T" "$mainpid" "$GOOD" "$OUTSIDE" "$NOTIMG" <<-'EOF' || pl_fail "journal entries of the service are wrong"
import json, re, sys
T, pid, good, outside, notimg = sys.argv[1:6]
load = lambda n: [json.loads(l) for l in open(f"{T}/{n}.json") if l.strip()]
ours = [e for e in load("service") if e.get("_PID") == pid]
errors = []
def want(cond, what):
    if not cond:
        errors.append(what)
want(ours, f"no SYSLOG_IDENTIFIER=pipelined entry from the daemon (pid {pid})")
for e in ours:
    m = e.get("MESSAGE", "")
    want(e.get("_TRANSPORT") == "journal",
         f"entry not sent by the native protocol (_TRANSPORT={e.get('_TRANSPORT')}): {m!r}")
    want(not re.match(r"<\d>", m), f"MESSAGE carries a <N> prefix: {m!r}")
    want(not m.startswith("job job1 item"), f"MESSAGE carries the stderr context: {m!r}")
    want(e.get("PRIORITY", "").isdigit(), f"no numeric PRIORITY on {m!r}")
stream = load("stream")
want(not stream, "the daemon wrote to its stderr stream: "
     + "; ".join(repr(e.get("MESSAGE")) for e in stream))

start = [e for e in ours if re.match(r"pipelined \S+ running: spool ", e.get("MESSAGE", ""))]
want(len(start) == 1, f"{len(start)} startup messages, want 1")
for e in start:
    want(e.get("PRIORITY") == "6", f"startup PRIORITY={e.get('PRIORITY')}, want 6")
    extra = sorted(set(e) & {"JOB", "ITEM", "STAGE", "URL", "ERRNO"})
    want(not extra, f"startup message has item fields {extra}")

# The operator's filter: JOB=job1 gives the two failures and nothing else.
job = [e for e in load("job1") if e.get("SYSLOG_IDENTIFIER") == "pipelined"]
want(sorted(str(e.get("ITEM")) for e in job) == ["4", "5"],
     f"JOB=job1 entries are items {[e.get('ITEM') for e in job]}, want 4 and 5")
expect = {"4": ("download", outside, "1", "outside file_root"),
          "5": ("resize", notimg, None, "not an image")}
for e in job:
    item = e.get("ITEM")
    if item not in expect:
        continue
    stage, url, errno, reason = expect[item]
    m = e.get("MESSAGE", "")
    want(e.get("PRIORITY") == "4", f"item {item}: PRIORITY={e.get('PRIORITY')}, want 4")
    want(e.get("STAGE") == stage, f"item {item}: STAGE={e.get('STAGE')}, want {stage}")
    want(e.get("URL") == url, f"item {item}: URL={e.get('URL')}, want {url}")
    got = e.get("ERRNO", "")
    want(got.isdigit() and int(got) > 0 and (errno is None or got == errno),
         f"item {item}: ERRNO={got!r}, want {errno or 'a positive errno'}")
    want(m.startswith(f"failed in {stage}: ") and reason in m,
         f"item {item}: MESSAGE {m!r} does not give the {stage} failure '{reason}'")
    want(e.get("_PID") == pid, f"item {item}: _PID={e.get('_PID')}, want {pid}")
if errors:
    sys.exit("\n".join(errors))
print(f"{len(ours)} native entries; failures: "
      + "; ".join(f"ITEM={e['ITEM']} STAGE={e['STAGE']} ERRNO={e['ERRNO']}" for e in job))
EOF

pl_note "systemctl --user stop"
plsc stop "$UNIT" || pl_fail "systemctl --user stop $UNIT failed"
[[ $(prop Result) == success && $(prop ExecMainStatus) == 0 ]] ||
	pl_fail "stop: Result=$(prop Result) ExecMainStatus=$(prop ExecMainStatus)"
rm -f "$T/main.pid"

# ---- 2. controls: the same daemon, stderr to a file ----
# control NAME [JOURNAL_STREAM VALUE|-]: run --once on job NAME with stderr
# to T/NAME.log; sets ctl_pid.  The job's items fail, so exit 1 is expected.
control() {
	local name=$1 js=$2 rc
	submit "$T/spool2" "$name"
	if [[ $js == - ]]; then
		env -u JOURNAL_STREAM "$PIPELINED" -c "$T/control.conf" --once 2> "$T/$name.log" &
	else
		[[ $js == self ]] && : > "$T/$name.log" && js=$(stat -c '%d:%i' "$T/$name.log")
		JOURNAL_STREAM=$js "$PIPELINED" -c "$T/control.conf" --once 2>> "$T/$name.log" &
	fi
	ctl_pid=$!
	wait "$ctl_pid"
	rc=$?
	((rc == 1)) || pl_fail "control $name: pipelined --once exited $rc, want 1 (items failed): $(tail -5 "$T/$name.log")"
	sync_marker
	journal_json "$T/$name.json" "_PID=$ctl_pid"
}
# prefixed NAME: every line of T/NAME.log is "<N>…"; the failure and the
# startup are there; the journal got nothing from the run.
prefixed() {
	local name=$1 log=$T/$1.log
	[[ -s $log ]] || pl_fail "control $name wrote nothing to stderr"
	grep -vqE '^<[0-7]>' "$log" &&
		pl_fail "control $name: lines without a <N> prefix: $(grep -vE '^<[0-7]>' "$log" | head -3)"
	grep -qF "<4>job $name item 4 ($OUTSIDE) download: failed in download: " "$log" ||
		pl_fail "control $name: no <4> line for item 4: $(cat "$log")"
	grep -qE '^<6>pipelined \S+ running: spool ' "$log" ||
		pl_fail "control $name: no <6> startup line: $(cat "$log")"
	[[ -s $T/$name.json ]] &&
		pl_fail "control $name reached the journal: $(head -c 600 "$T/$name.json")"
	return 0
}

pl_note "control: no JOURNAL_STREAM, journald running: <N> lines on stderr"
control ctlnone -
prefixed ctlnone
pl_note "control: a stale JOURNAL_STREAM (another file's dev:inode): <N> lines on stderr"
control ctlstale "$(stat -c '%d:%i' "$CONF")"
prefixed ctlstale
pl_note "control: JOURNAL_STREAM naming stderr itself: native entries, stderr empty"
control ctlself self
[[ -s $T/ctlself.log ]] && pl_fail "control ctlself wrote to stderr: $(head -5 "$T/ctlself.log")"
/usr/bin/python3 - "$T/ctlself.json" "$OUTSIDE" <<-'EOF' || pl_fail "control ctlself: journal entries are wrong"
import json, sys
es = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
f = [e for e in es if e.get("JOB") == "ctlself" and e.get("ITEM") == "4"]
if not (len(f) == 1 and f[0].get("STAGE") == "download" and f[0].get("URL") == sys.argv[2]
        and f[0].get("_TRANSPORT") == "journal" and f[0].get("PRIORITY") == "4"):
    sys.exit(f"want one native entry JOB=ctlself ITEM=4 STAGE=download; got {f or es}")
EOF
echo "PASS: native journal entries with PRIORITY/JOB/ITEM/STAGE/URL/ERRNO from the service; <N> lines without a matching JOURNAL_STREAM"
