#!/usr/bin/env bash
# bench/demo.sh — `make demo`, the project's main job: the flashback drill end
# to end on a DR lab of real MySQL nodes, DBScale emulator routers and OpenSSH.
#
#   1. prepare   make build mysql sshd (installs MySQL into .lab/mysql and
#                openssh-server when missing), builds bin/democheck
#   2. lab up    bin/flow lab up --dir .flow-lab/demo   (a fresh lab)
#   3. primary writes before the drill (flow lab write --cluster primary)
#   4. verify    flashback-verify.yaml
#   5. start     flashback-start.yaml --yes       } the primary keeps taking
#   6. drill     writes on the standby router      } writes all along
#   7. stop      flashback-stop.yaml --yes         }
#   8. primary writes after the drill
#   9. check     flow lab check (every node against its primary master), then
#                bench/democheck: drill rows gone everywhere, every primary
#                row present everywhere, replication running, donor enabled,
#                redo record cleared, no password in any log
#  10. lab down  (also on failure, from the EXIT trap) unless KEEP=1
#
# Every phase prints its real output; it is also kept in .flow-lab/demo-logs/.
# The summary at the end gives each phase's time, the rows written and
# discarded, and PASS or FAIL (exit 0 or 1).
#
# The lab's addresses are fixed, so one lab runs on a machine at a time: the
# lab part runs under the machine-wide lock the Go lab tests take
# (${TMPDIR:-/tmp}/flow-drlab.lock; flock(1) and gofrs/flock both use
# flock(2)), waiting for running tests if need be, and records the lab folder
# in LOCK.dir so that the next holder stops a lab this script could not stop.
#
# Settings (environment):
#   KEEP=1            leave the lab running at the end (stop it with
#                     bin/flow lab down --dir .flow-lab/demo --remove)
#   DRILL_SECONDS=5   how long the drill writes on the standby
#   LOG_LEVEL=debug   flow's log level for the playbooks (info hides the
#                     statements; debug is flow's default)
#   LOCK_WAIT=1800    seconds to wait for the lab lock
#   LAB_DIR, LOG_DIR  the lab folder and the log folder
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
GO=${GO:-go}
MAKE=${MAKE:-make}
FLOW=bin/flow
CHECK=bin/democheck
LAB_DIR=${LAB_DIR:-.flow-lab/demo}
LOG_DIR=${LOG_DIR:-.flow-lab/demo-logs}
LOCK=${TMPDIR:-/tmp}/flow-drlab.lock
LOCK_WAIT=${LOCK_WAIT:-1800}
DRILL_SECONDS=${DRILL_SECONDS:-5}
LOG_LEVEL=${LOG_LEVEL:-}
KEEP=${KEEP:-0}
INI=$LAB_DIR/flashback.ini
REDO=$LAB_DIR/redo.json

say() { printf '%s\n' "$@"; }
banner() { printf '\n==> %s\n    $ %s\n' "$1" "$2"; }
now_us() { local t=${EPOCHREALTIME/./}; printf '%s' "$((10#$t))"; }
secs() { printf '%d.%02d' "$(($1 / 1000000))" "$((($1 % 1000000) / 10000))"; }

# ---------------------------------------------------------------------------
# Prepare (without the lab lock: a first MySQL install may take minutes).
command -v flock >/dev/null || { say "demo: flock(1) (util-linux) is needed for the lab lock" >&2; exit 1; }
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/*.log "$LOG_DIR"/*.json "$LOG_DIR"/*.err "$LOG_DIR"/primary-writer.*
banner "[1/10] prepare: build flow, install MySQL and OpenSSH when missing" "$MAKE build mysql sshd && $GO build -o $CHECK ./bench/democheck"
t0=$(now_us)
rc=0
{ "$MAKE" --no-print-directory build mysql sshd GO="$GO" && "$GO" build -o "$CHECK" ./bench/democheck; } 2>&1 | tee "$LOG_DIR/01-prepare.log" || rc=${PIPESTATUS[0]}
PREPARE_US=$(($(now_us) - t0))
if [ "$rc" != 0 ]; then
	say "" "demo: prepare failed (exit $rc); see $LOG_DIR/01-prepare.log" "" "RESULT: FAIL"
	exit 1
fi

# ---------------------------------------------------------------------------
# The lab lock, on file descriptor 9 for the rest of the script. Every command
# runs with 9>&- so that no process the lab starts (mysqld, routers, sshd)
# inherits it: the lock ends with this script, even with KEEP=1.
exec 9>>"$LOCK"
t0=$(now_us)
if ! flock -n 9; then
	say "" "demo: the lab lock $LOCK is held (lab tests are running); waiting up to ${LOCK_WAIT}s"
	if ! flock -w "$LOCK_WAIT" 9; then
		say "demo: the lab lock $LOCK was not free within ${LOCK_WAIT}s" "" "RESULT: FAIL" >&2
		exit 1
	fi
fi
LOCK_WAITED_US=$(($(now_us) - t0))

PHASES=("prepare")
PH_US=("$PREPARE_US")
PH_RC=(0)
LAB_STARTED=0
WRITER_PID=
RESULT=FAIL
FAIL_REASON=
ROWS_BEFORE=0 ROWS_DURING=0 ROWS_AFTER=0 DRILL_ROWS=0 DRILL_LEFT=? PRIMARY_ON_NODES=?
STOP_WRITER=$LOG_DIR/primary-writer.stop
WRITER_FAILED=$LOG_DIR/primary-writer.failed

# run_phase N NAME LOG CMD…: runs CMD with its output on the terminal and in
# LOG, records its time and exit code; returns the exit code.
run_phase() {
	local n=$1 name=$2 log=$LOG_DIR/$3
	shift 3
	banner "[$n/10] $name" "$*"
	local t0 rc=0
	t0=$(now_us)
	"$@" 9>&- 2>&1 | tee "$log" 9>&- || rc=${PIPESTATUS[0]}
	PHASES+=("$name")
	PH_US+=("$(($(now_us) - t0))")
	PH_RC+=("$rc")
	return "$rc"
}

# fail REASON: the demo failed; the EXIT trap stops the lab and sums up.
fail() {
	FAIL_REASON=$1
	exit 1
}

# rows_of FILE: the sum of "rows" of the flow lab write --json outputs in FILE.
rows_of() {
	local n
	n=$({ grep -o '"rows": *[0-9]*' "$1" 2>/dev/null || true; } | awk -F: '{s += $2} END {print s + 0}')
	printf '%s' "${n:-0}"
}

# primary_writer: back-to-back one-second bounded writes through the primary
# router until STOP_WRITER appears.
primary_writer() {
	while [ ! -e "$STOP_WRITER" ]; do
		if ! "$FLOW" lab write --dir "$LAB_DIR" --cluster primary --seconds 1 --rate 50 --max-rows 50 --json \
			>>"$LOG_DIR/06-primary-writes-during.json" 2>>"$LOG_DIR/06-primary-writes-during.log"; then
			: >"$WRITER_FAILED"
			return 1
		fi
	done
}

# stop_writer: ask the writer to stop and wait for it (at most one bounded
# write of one second is in flight).
stop_writer() {
	[ -n "$WRITER_PID" ] || return 0
	: >"$STOP_WRITER"
	wait "$WRITER_PID" || true
	WRITER_PID=
}

summary() {
	local i total=0
	printf '\n==> summary\n'
	printf '    %-46s %9s  %s\n' phase seconds result
	for i in "${!PHASES[@]}"; do
		local r=ok
		[ "${PH_RC[$i]}" = 0 ] || r="FAILED (exit ${PH_RC[$i]})"
		printf '    %-46s %9s  %s\n' "${PHASES[$i]}" "$(secs "${PH_US[$i]}")" "$r"
		total=$((total + PH_US[i]))
	done
	printf '    %-46s %9s\n' "total" "$(secs "$total")"
	if [ "$LOCK_WAITED_US" -ge 1000000 ]; then
		printf '    (waited %ss for the lab lock before lab up; not counted)\n' "$(secs "$LOCK_WAITED_US")"
	fi
	local written=$((ROWS_BEFORE + ROWS_DURING + ROWS_AFTER))
	printf '    rows written on the primary:  %d (%d before the drill, %d during start/drill/stop, %d after)\n' \
		"$written" "$ROWS_BEFORE" "$ROWS_DURING" "$ROWS_AFTER"
	printf '    primary rows on every node after stop: %s\n' "$PRIMARY_ON_NODES"
	if [ "$DRILL_LEFT" = 0 ]; then
		printf '    drill rows written on the standby: %d; discarded by stop: %d; left: 0\n' "$DRILL_ROWS" "$DRILL_ROWS"
	else
		printf '    drill rows written on the standby: %d; left after stop: %s\n' "$DRILL_ROWS" "$DRILL_LEFT"
	fi
	printf '    logs: %s/\n' "$LOG_DIR"
	[ -z "$FAIL_REASON" ] || printf '    failure: %s\n' "$FAIL_REASON"
	printf '\nRESULT: %s\n' "$RESULT"
}

on_exit() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	stop_writer
	ROWS_DURING=$(rows_of "$LOG_DIR/06-primary-writes-during.json")
	if [ "$rc" = 0 ] && [ "$RESULT" = PASS ]; then :; else
		RESULT=FAIL
		[ -n "$FAIL_REASON" ] || FAIL_REASON="interrupted or an unexpected error (exit $rc)"
	fi
	if [ "$LAB_STARTED" = 1 ]; then
		if [ "$KEEP" = 1 ]; then
			say "" "demo: KEEP=1: the lab keeps running in $LAB_DIR (bin/flow lab status --dir $LAB_DIR;" \
				"      stop it with bin/flow lab down --dir $LAB_DIR --remove). Its folder stays recorded in $LOCK.dir," \
				"      so the next lab test stops it."
		elif [ "$RESULT" = PASS ]; then
			run_phase 10 "lab down" 10-lab-down.log "$FLOW" lab down --dir "$LAB_DIR" --remove && rm -f "$LOCK.dir"
		else
			run_phase 10 "lab down (folder kept for its logs)" 10-lab-down.log "$FLOW" lab down --dir "$LAB_DIR" && rm -f "$LOCK.dir"
		fi
	fi
	rm -f "$STOP_WRITER"
	summary
	[ "$RESULT" = PASS ] && exit 0
	exit 1
}
trap on_exit EXIT
trap 'FAIL_REASON="interrupted"; exit 130' INT
trap 'FAIL_REASON="terminated"; exit 143' TERM

rm -f "$STOP_WRITER" "$WRITER_FAILED"
LOGLEVEL_ARGS=()
[ -z "$LOG_LEVEL" ] || LOGLEVEL_ARGS=(--log-level "$LOG_LEVEL")
RUN_ARGS=(-c "$INI" --state-dir "$LAB_DIR/state" "${LOGLEVEL_ARGS[@]}")

# A lab a crashed holder of the lock left behind, and an old demo lab.
if [ -s "$LOCK.dir" ]; then
	old=$(cat "$LOCK.dir")
	if [ -f "$old/lab.json" ]; then
		say "demo: stopping the lab a previous holder of the lab lock left in $old"
		"$FLOW" lab down --dir "$old" 9>&- || fail "could not stop the lab left in $old"
	fi
	rm -f "$LOCK.dir"
fi
if [ -f "$LAB_DIR/lab.json" ]; then
	say "demo: removing the previous demo lab in $LAB_DIR"
	"$FLOW" lab down --dir "$LAB_DIR" --remove 9>&- || fail "could not remove the previous demo lab in $LAB_DIR"
fi
rm -rf "$LAB_DIR"

mkdir -p "$(dirname "$LAB_DIR")"
printf '%s\n' "$ROOT/$LAB_DIR" >"$LOCK.dir"
LAB_STARTED=1
run_phase 2 "lab up" 02-lab-up.log "$FLOW" lab up --dir "$LAB_DIR" || fail "flow lab up failed"

run_phase 3 "primary writes before the drill" 03-primary-writes-before.json \
	"$FLOW" lab write --dir "$LAB_DIR" --cluster primary --seconds 2 --max-rows 200 --json ||
	fail "writing to the primary failed"
ROWS_BEFORE=$(rows_of "$LOG_DIR/03-primary-writes-before.json")

run_phase 4 "verify (flashback-verify.yaml)" 04-verify.log \
	"$FLOW" run playbooks/flashback-verify.yaml "${RUN_ARGS[@]}" || fail "flashback-verify refused or failed"

say "" "==> the primary keeps taking writes (bin/flow lab write --cluster primary --seconds 1, back to back) until stop is done"
primary_writer 9>&- &
WRITER_PID=$!

run_phase 5 "start (flashback-start.yaml)" 05-start.log \
	"$FLOW" run playbooks/flashback-start.yaml "${RUN_ARGS[@]}" --var "redo_path=$REDO" --yes ||
	fail "flashback-start failed"

run_phase 6 "drill: writes on the standby" 06-drill-writes.json \
	"$FLOW" lab write --dir "$LAB_DIR" --cluster standby --seconds "$DRILL_SECONDS" --max-rows 100000 --json ||
	fail "the drill's writes on the standby failed"
DRILL_ROWS=$(rows_of "$LOG_DIR/06-drill-writes.json")
[ "$DRILL_ROWS" -gt 0 ] || fail "the standby took no drill write"

run_phase 7 "stop (flashback-stop.yaml)" 07-stop.log \
	"$FLOW" run playbooks/flashback-stop.yaml "${RUN_ARGS[@]}" --var "redo_path=$REDO" --yes ||
	fail "flashback-stop failed"

stop_writer
ROWS_DURING=$(rows_of "$LOG_DIR/06-primary-writes-during.json")
if [ -e "$WRITER_FAILED" ]; then
	cat "$LOG_DIR/06-primary-writes-during.log"
	fail "a write on the primary failed during the drill (see $LOG_DIR/06-primary-writes-during.log)"
fi
say "    the primary took $ROWS_DURING rows during start, the drill and stop"

run_phase 8 "primary writes after the drill" 08-primary-writes-after.json \
	"$FLOW" lab write --dir "$LAB_DIR" --cluster primary --seconds 2 --max-rows 200 --json ||
	fail "writing to the primary after the drill failed"
ROWS_AFTER=$(rows_of "$LOG_DIR/08-primary-writes-after.json")

run_phase 9 "check: flow lab check" 09-lab-check.log \
	"$FLOW" lab check --dir "$LAB_DIR" --wait 2m || fail "flow lab check found differences"
rc=0
run_phase 9 "check: democheck (drill rows, primary rows)" 09-democheck.log \
	"$CHECK" -dir "$LAB_DIR" -want-primary "$((ROWS_BEFORE + ROWS_DURING + ROWS_AFTER))" -redo "$REDO" "$LOG_DIR" || rc=$?
line=$(grep '^democheck:' "$LOG_DIR/09-democheck.log" | tail -n 1 || true)
if [[ $line =~ primary_rows=([0-9]+)\ drill_rows_left=([0-9]+) ]]; then
	PRIMARY_ON_NODES=${BASH_REMATCH[1]}
	DRILL_LEFT=${BASH_REMATCH[2]}
fi
[ "$rc" = 0 ] || fail "the independent check failed"

RESULT=PASS
