#!/bin/bash
# it_service.sh — the daemon under a real systemd user manager, through the
# shipped unit: start waits for READY=1, a job goes through the pipeline,
# STATUS= is shown, USR1 writes status.json, reload applies new widths and
# rejects a bad file, a producer in the group pipelined submits with
# pipelinectl and reads the status while a user outside it is refused,
# stop is a clean exit 0.
#
# The unit tested is systemd/pipelined.service.in rendered for $PIPELINED,
# minus what a user manager cannot apply (the *Directory= settings, the
# namespace and capability sandboxing), which the test replaces by
# explicit paths in its folder owned by the unit's user.  User=pipelined
# and Group=pipelined stay (root's user manager applies them), with the
# user made in the test's mount namespace only.  The seccomp part of the
# sandbox (SystemCallFilter, MemoryDenyWriteExecute, …) stays: the daemon
# must live with it.  Under a sanitizer build it goes too, since
# LeakSanitizer needs ptrace.
#
# Runs itself again inside `unshare -m --propagation private` (see
# tests/lib/usermgr.sh).  Needs root and a mount namespace with a tmpfs in
# it (pl_cannot_unshare_mount; skipped, exit 77, without them).  Every wait
# is bounded and names what it waited for; the manager is stopped on every
# exit.  PL_KEEP=1 keeps the test folder.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/usermgr.sh"

if [[ -z ${PL_IT_SERVICE_INNER:-} ]]; then
	if why=$(pl_cannot_unshare_mount); then pl_skip "$why"; fi
	[[ -n ${PIPELINED:-} && -x $PIPELINED ]] ||
		pl_fail "PIPELINED (${PIPELINED:-unset}) is not an executable"
	tmp=$(mktemp -d /tmp/pl-it-service.XXXXXX) || pl_fail "mktemp"
	PL_IT_SERVICE_INNER=1 PL_TESTDIR=$tmp \
		timeout -k 10 "${PL_IT_SERVICE_TIMEOUT:-360}" \
		unshare -m --propagation private /bin/bash "$0"
	rc=$?
	# A manager the inner script could not stop (killed by timeout).
	if [[ -s $tmp/manager.pid ]] && kill -0 "$(cat "$tmp/manager.pid")" 2> /dev/null; then
		kill -KILL "$(cat "$tmp/manager.pid")" 2> /dev/null
	fi
	if [[ -s $tmp/main.pid ]] && kill -0 "$(cat "$tmp/main.pid")" 2> /dev/null; then
		kill -KILL "$(cat "$tmp/main.pid")" 2> /dev/null
	fi
	((rc == 124)) && echo "FAIL: the test ran out of time" >&2
	if [[ ${PL_KEEP:-} ]]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
	exit "$rc"
fi

# ---- inside the private mount namespace ----
T=$PL_TESTDIR
CONF=$T/pipeline.conf
UNIT=pipelined.service

on_exit() {
	local rc=$?
	if ((rc != 0)); then
		echo "=== systemctl --user status pipelined" >&2
		timeout 10 systemctl --user --no-pager status "$UNIT" >&2 2>&1
		echo "=== daemon log (tail)" >&2
		tail -40 "$T/daemon.log" >&2 2> /dev/null
		if [[ -e $T/run/status.json ]]; then
			echo "=== last status.json" >&2
			cat "$T/run/status.json" >&2
		fi
		echo "=== manager log (tail)" >&2
		tail -20 "$T/manager.log" >&2 2> /dev/null
	fi
	pl_usermgr_stop
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---- test data ----
mkdir -p "$T/images" "$T/out" "$T/run" "$T/spool"/{tmp,new,cur,done,failed} ||
	pl_fail "mkdir in $T"
vips black "$T/x.v" 120 80 --bands 3 &&
	vips copy "$T/x.v" "$T/images/black.jpg" &&
	vips gaussnoise "$T/n.v" 90 150 &&
	vips cast "$T/n.v" "$T/n8.v" uchar &&
	vips copy "$T/n8.v" "$T/images/noise.png" ||
	pl_fail "cannot make test images with vips"

# write_conf DOWNLOAD_WORKERS RESIZE_WORKERS UPLOAD_WORKERS
write_conf() {
	cat > "$CONF.tmp" <<-EOF
	# it_service.sh test configuration
	spool = "$T/spool";
	runtime = "$T/run";
	download = {
	  workers = $1;
	  queue = 4;
	  timeout = 20.0;
	  protocols = [ "file" ];
	  file_root = "$T/images";
	};
	resize = {
	  workers = $2;
	  queue = 4;
	  variants = (
	    { name = "small"; width = 32; height = 32; fit = "inside";
	      format = "jpeg"; quality = 80; }
	  );
	};
	upload = {
	  workers = $3;
	  queue = 4;
	  url = "file://$T/out/{name}-{variant}.{ext}";
	};
	EOF
	mv "$CONF.tmp" "$CONF" || pl_fail "cannot write $CONF"
}
write_conf 2 1 1

# The unit's own user and group, as sysusers.d makes them, in this
# namespace only: the daemon runs as pipelined, not as root, and owns the
# folders the unit's StateDirectory=/RuntimeDirectory= would give it.
SVC_ID=47331 PRODUCER_ID=47332 OUTSIDER_ID=47334
pl_usermgr_add_user pipelined "$SVC_ID"
chmod 0755 "$T" && chown -R pipelined:pipelined "$T/spool" "$T/out" "$T/run" &&
	chmod 0750 "$T/run" || pl_fail "cannot give the test folders to pipelined"

pl_note "pipelined -t on the test configuration"
out=$("$PIPELINED" -c "$CONF" -t 2>&1)
rc=$?
((rc == 0)) && [[ $out == *"configuration OK"* ]] ||
	pl_fail "pipelined -c $CONF -t (exit $rc) does not accept the test configuration: $out"

# ---- the unit, as a user manager can run it ----
pl_usermgr_start "$T"
# A system manager's notify socket is reachable by every service user;
# this one sits in root's XDG_RUNTIME_DIR: let pipelined through to it.
chmod 0711 "$XDG_RUNTIME_DIR" "$XDG_RUNTIME_DIR/systemd" &&
	chmod 0777 "$XDG_RUNTIME_DIR/systemd/notify" ||
	pl_fail "cannot open the path to the manager's notify socket"
unitfile=$(pl_unit_dir)/$UNIT
pl_render_unit "$T/rendered.service" "$PIPELINED" "$CONF"
pl_user_unit "$T/rendered.service" "$unitfile" keep-user
grep -q '^User=pipelined' "$unitfile" || pl_fail "the unit has no User=pipelined"
# Logs to a file: there is no journal here; the daemon then logs <N> lines.
sed -i "/^\[Service\]/a StandardOutput=append:$T/daemon.log\nStandardError=append:$T/daemon.log" "$unitfile"
grep -q '^Type=notify' "$unitfile" || pl_fail "the unit is not Type=notify"
plsc daemon-reload || pl_fail "systemctl --user daemon-reload"

prop() { plsc show -p "$1" --value "$UNIT"; }

# A job left in cur/ by a "crash": recovery must bring it back before READY.
printf '%s\n' "file://$T/images/black.jpg crashed" > "$T/spool/cur/crashed" ||
	pl_fail "cannot write a job into cur/"

pl_note "systemctl --user start (Type=notify: returns once READY=1 is sent)"
plsc start "$UNIT" || pl_fail "systemctl --user start $UNIT failed"
state=$(prop ActiveState)/$(prop SubState)
[[ $state == active/running ]] ||
	pl_fail "after start returned the unit is $state, not active/running"
mainpid=$(prop MainPID)
[[ $mainpid =~ ^[1-9][0-9]*$ ]] || pl_fail "no MainPID ($mainpid)"
echo "$mainpid" > "$T/main.pid"
ids=$(awk '/^Uid:/ { u = $2 } /^Gid:/ { g = $2 } END { print u ":" g }' "/proc/$mainpid/status")
[[ $ids == "$SVC_ID:$SVC_ID" ]] || pl_fail "the daemon runs as uid:gid $ids, not pipelined ($SVC_ID)"
if [[ -z ${PL_SANITIZE:-} ]]; then
	grep -q '^Seccomp:[[:space:]]*2' "/proc/$mainpid/status" ||
		pl_fail "the daemon does not run under the unit's seccomp filter"
fi

# ---- a job through the pipeline ----
# await_job NAME: wait until NAME is in done/ (fail at once if in failed/)
job_finished() {
	[[ -e $T/spool/failed/$1 ]] &&
		pl_fail "job $1 ended in failed/: $(cat "$T/spool/failed/$1.result" 2> /dev/null)"
	[[ -e $T/spool/done/$1 && -e $T/spool/done/$1.result ]]
}
# check_result NAME COUNT: COUNT result lines, each JSON with status "ok"
check_result() {
	/usr/bin/python3 - "$T/spool/done/$1.result" "$2" <<-'EOF' || pl_fail "result of job $1 is wrong"
	import json, sys
	path, want = sys.argv[1], int(sys.argv[2])
	lines = [l for l in open(path) if l.strip()]
	if len(lines) != want:
	    sys.exit(f"{path}: {len(lines)} result lines, want {want}:\n" + "".join(lines))
	for l in lines:
	    r = json.loads(l)
	    if r.get("status") != "ok":
	        sys.exit(f"{path}: item not ok: {l}")
	EOF
}
# check_image PATH: exists and fits the 32x32 box of the "small" variant
check_image() {
	local w h
	[[ -s $1 ]] || pl_fail "output $1 is missing (out/ holds: $(ls "$T/out"))"
	w=$(vipsheader -f width "$1") && h=$(vipsheader -f height "$1") ||
		pl_fail "output $1 is not an image"
	((w <= 32 && h <= 32 && (w == 32 || h == 32))) ||
		pl_fail "output $1 is ${w}x$h, not fitted inside 32x32"
}

pl_note "a job dropped into spool/new"
printf '%s\n' "# two items" "file://$T/images/black.jpg" "" \
	"file://$T/images/noise.png bee" > "$T/spool/tmp/job1" &&
	mv "$T/spool/tmp/job1" "$T/spool/new/job1" || pl_fail "cannot submit job1"
pl_wait 60 "job1 in spool/done with its result" job_finished job1
check_result job1 2
check_image "$T/out/bee-small.jpg"
pl_wait 30 "the recovered job 'crashed' in spool/done" job_finished crashed
check_result crashed 1
check_image "$T/out/crashed-small.jpg"

status_done() { [[ $(prop StatusText) == *done* ]]; }
pl_wait 10 "StatusText containing 'done'" status_done
pl_note "StatusText: $(prop StatusText)"

# ---- USR1: status.json ----
# widths_are D R U: status.json holds these stage widths (object keyed by
# stage, or a list of objects with a name; "width" or "workers").
widths_are() {
	/usr/bin/python3 - "$T/run/status.json" "$@" <<-'EOF'
	import json, sys
	path, want = sys.argv[1], dict(zip(("download", "resize", "upload"), map(int, sys.argv[2:5])))
	got = {}
	def walk(o, key=None):
	    if isinstance(o, dict):
	        name = key if key in want else o.get("name", o.get("stage"))
	        if name in want:
	            for k in ("width", "workers"):
	                if isinstance(o.get(k), int):
	                    got.setdefault(name, o[k])
	        for k, v in o.items():
	            walk(v, k)
	    elif isinstance(o, list):
	        for v in o:
	            walk(v)
	walk(json.load(open(path)))
	if got != want:
	    sys.exit(f"status.json widths {got}, want {want}")
	EOF
}
status_written() {
	[[ -s $T/run/status.json ]] &&
		/usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/run/status.json" 2> /dev/null
}
# report: remove status.json, send USR1, await a complete new one
report() {
	rm -f "$T/run/status.json"
	plsc kill -s USR1 "$UNIT" || pl_fail "systemctl --user kill -s USR1"
	pl_wait 10 "$T/run/status.json after SIGUSR1" status_written
}

pl_note "systemctl --user kill -s USR1"
report
widths_are 2 1 1 || pl_fail "status.json before reload: $(cat "$T/run/status.json")"

# ---- reload ----
active() { [[ $(prop ActiveState) == active ]]; }
pl_note "systemctl --user reload with new widths"
write_conf 3 1 2
plsc reload "$UNIT" || pl_fail "systemctl --user reload $UNIT failed"
pl_wait 20 "the unit to be active again after reload" active
# The reload is applied asynchronously to ExecReload's kill: poll reports.
reloaded() { report; widths_are 3 1 2 2> /dev/null; }
pl_wait 20 "status.json to show the reloaded widths 3/1/2" reloaded

pl_note "reload with a broken configuration keeps the running one"
cp "$CONF" "$CONF.good"
printf 'download = { workers = "many"; };\nbogus_setting = 1;\n' > "$CONF"
plsc reload "$UNIT" || pl_fail "systemctl --user reload (bad file) failed"
pl_wait 20 "the unit to be active after the rejected reload" active
report
widths_are 3 1 2 || pl_fail "a rejected reload changed the widths: $(cat "$T/run/status.json")"
[[ $(prop MainPID) == "$mainpid" ]] || pl_fail "MainPID changed from $mainpid to $(prop MainPID)"
mv "$CONF.good" "$CONF"

pl_note "a job after the reloads"
printf '%s\n' "file://$T/images/noise.png again" > "$T/spool/tmp/job2" &&
	mv "$T/spool/tmp/job2" "$T/spool/new/job2" || pl_fail "cannot submit job2"
pl_wait 60 "job2 in spool/done with its result" job_finished job2
check_result job2 1
check_image "$T/out/again-small.jpg"

# ---- pipelinectl on the service's spool ----
# The unit's User=, Group= and UMask= and the modes the daemon sets are
# what let producers in its group in and keep others out (pipelinectl(1),
# PERMISSIONS): check them as the service made them, then submit and wait
# as a producer in the group does (its own primary group is another), and
# be refused as a user outside it.
ctl=$(dirname "$PIPELINED")/pipelinectl
[[ -x $ctl ]] || pl_fail "pipelinectl is not built next to pipelined ($ctl)"
for d in tmp:1770 new:1770 cur:750 done:750 failed:750; do
	m=$(stat -c %a "$T/spool/${d%%:*}")
	[[ $m == "${d#*:}" ]] || pl_fail "spool/${d%%:*} has mode $m under the unit, not ${d#*:}"
done
m=$(stat -c %a:%U:%G "$T/spool/done/job2.result")
[[ $m == 640:pipelined:pipelined ]] ||
	pl_fail "a result is $m under the unit's User=/Group=/UMask=, not 640:pipelined:pipelined"
producer=(setpriv --reuid="$PRODUCER_ID" --regid="$((PRODUCER_ID + 1))" --groups="$SVC_ID" --)
outsider=(setpriv --reuid="$OUTSIDER_ID" --regid="$OUTSIDER_ID" --clear-groups --)
pl_note "pipelinectl submit -w and status as a producer in the group pipelined"
out=$(printf '%s\n' "file://$T/images/black.jpg viactl" |
	timeout 120 "${producer[@]}" "$ctl" -c "$CONF" submit -n ctljob -w 2>&1)
rc=$?
((rc == 0)) || pl_fail "pipelinectl submit -w by a producer exited $rc: $out"
check_result ctljob 1
check_image "$T/out/viactl-small.jpg"
out=$("${producer[@]}" "$ctl" -c "$CONF" status 2>&1) ||
	pl_fail "pipelinectl status by a producer exited $?: $out"
[[ $out == "pipelined: running, pid $mainpid,"* ]] ||
	pl_fail "pipelinectl status does not show the service's pid $mainpid: $out"
pl_note "pipelinectl as a user outside the group"
for cmd in "submit -n outsider" "list" "show ctljob" "status"; do
	# shellcheck disable=SC2086
	out=$(printf '%s\n' "file://$T/images/black.jpg" |
		"${outsider[@]}" "$ctl" -c "$CONF" $cmd 2>&1)
	rc=$?
	((rc == 77)) || pl_fail "pipelinectl $cmd by an outsider exited $rc, not 77: $out"
done
[[ ! -e $T/spool/new/outsider && ! -e $T/spool/done/outsider ]] ||
	pl_fail "an outsider's job reached the spool"

# ---- stop ----
pl_note "systemctl --user stop"
plsc stop "$UNIT" || pl_fail "systemctl --user stop $UNIT failed"
state=$(prop ActiveState) result=$(prop Result) status=$(prop ExecMainStatus)
restarts=$(prop NRestarts)
[[ $state == inactive ]] ||
	pl_fail "after stop the unit is $state, not inactive (Result=$result ExecMainStatus=$status)"
[[ $result == success && $status == 0 ]] ||
	pl_fail "stop: Result=$result ExecMainStatus=$status (want success and 0)"
[[ $restarts == 0 ]] || pl_fail "the daemon was restarted $restarts time(s) during the test"
[[ -z $(ls -A "$T/spool/cur") ]] || pl_fail "jobs left in cur/ after a graceful stop: $(ls "$T/spool/cur")"
echo "PASS: start/READY, job, StatusText, USR1 status.json, reload, pipelinectl, stop (Result=$result, status $status)"
