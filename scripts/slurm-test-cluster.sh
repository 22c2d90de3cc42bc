#!/usr/bin/env bash
# A real single-node SLURM on 127.0.0.1 for the test suite: munged, slurmctld and slurmd run
# as root from a directory of ours, without systemd or cgroups (proctrack/linuxproc,
# task/none), with a slurm.conf of ours that only `SLURM_CONF` points at (/etc/slurm and
# /etc/munge are neither read nor written).
#
# Usage:   scripts/slurm-test-cluster.sh start    install Debian's slurm and munge if missing,
#                                                  start the daemons, wait until the node is idle;
#                                                  prints the env file's path on stdout
#          scripts/slurm-test-cluster.sh status   exit 0 only when the node is idle/mixed and
#                                                  `srun -N1 true` runs
#          scripts/slurm-test-cluster.sh stop     cancel jobs, stop the daemons; a no-op when
#                                                  nothing runs
# Env:     MDARK_SLURM_DIR   our directory (default /tmp/mdark-slurm): slurm.conf, munge key and
#                            socket, state, spool, pid and log files, and the env file `env`
#          MDARK_SLURM_PORT  slurmctld's port (default 6817); slurmd listens on the next one
#
# The env file holds `export KEY=VALUE` lines (SLURM_CONF, and the partition's name); every
# process that calls sbatch/squeue/scancel needs them. It exists only while the cluster is up:
# start writes it last, stop removes it first, so tests that need SLURM skip without it.
# The node is called `localhost` (NodeAddr=127.0.0.1), so the machine's hostname never matters.
# One-core jobs share the node (select/cons_tres, CR_Core_Memory, DefMemPerCPU); a job asking
# for more memory than the node has is refused by sbatch at once.
set -euo pipefail

DIR="${MDARK_SLURM_DIR:-/tmp/mdark-slurm}"
PORT="${MDARK_SLURM_PORT:-6817}"
PARTITION=debug
NODE=localhost

say() { echo "slurm-test-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

case "$DIR" in
    *[[:space:]]*) die "MDARK_SLURM_DIR must not contain spaces: '$DIR'" ;;
    /*) ;;
    *) DIR="$PWD/$DIR" ;;
esac
CONF="$DIR/slurm.conf"
ENVFILE="$DIR/env"
MUNGE_SOCKET="$DIR/munge/munge.socket"
export SLURM_CONF="$CONF"

# pid file -> expected process name (checked before any kill, so a reused pid is left alone)
PIDS=("$DIR/run/slurmd.pid:slurmd" "$DIR/run/slurmctld.pid:slurmctld" "$DIR/munge/munged.pid:munged")

# Whether process $1 exists, is named $2 and is not a zombie.
alive() {
    [ "$(cat "/proc/$1/comm" 2>/dev/null || true)" = "$2" ] || return 1
    [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null || true)" != Z ]
}

# The live pid recorded in $1 if its process is named $2, else nothing.
live_pid() {
    local pid
    pid="$(cat "$1" 2>/dev/null || true)"
    case "$pid" in '' | *[!0-9]*) return 0 ;; esac
    if alive "$pid" "$2"; then echo "$pid"; fi
}

any_running() {
    local entry
    for entry in "${PIDS[@]}"; do
        [ -n "$(live_pid "${entry%%:*}" "${entry##*:}")" ] && return 0
    done
    return 1
}

all_running() {
    local entry
    for entry in "${PIDS[@]}"; do
        [ -n "$(live_pid "${entry%%:*}" "${entry##*:}")" ] || return 1
    done
}

node_state() { timeout 10 sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1 || true; }

node_up() {
    case "$(node_state)" in idle* | mixed*) return 0 ;; *) return 1 ;; esac
}

write_env() {
    local tmp="$ENVFILE.tmp"
    {
        echo "# written by scripts/slurm-test-cluster.sh start; removed by its stop"
        echo "export SLURM_CONF=$CONF"
        echo "export MDARK_SLURM_PARTITION=$PARTITION"
    } >"$tmp"
    mv -f "$tmp" "$ENVFILE"
}

install_slurm() {
    local missing="" b
    for b in slurmctld slurmd sinfo sbatch squeue scancel srun munged munge; do
        command -v "$b" >/dev/null 2>&1 || missing="$missing $b"
    done
    [ -z "$missing" ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "SLURM is not installed (missing:$missing) and there is no apt-get to install it"
    say "installing slurmctld slurmd slurm-client munge (missing:$missing)"
    # Debian's maintainer scripts would start the daemons under /etc; policy-rc.d exit 101 stops that.
    local made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local log="$DIR/install.log" ok=""
    export DEBIAN_FRONTEND=noninteractive
    if apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >"$log" 2>&1; then
        ok=1
    elif apt-get update -q >>"$log" 2>&1 && apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >>"$log" 2>&1; then
        ok=1
    fi
    [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
    [ -n "$ok" ] || die "apt-get install slurmctld slurmd slurm-client munge failed (see $log)"
}

write_conf() {
    # The node's sockets/cores/threads and memory as slurmd sees them; RealMemory a bit under
    # (95 %), or slurmd registering less than configured would make the node INVAL.
    local hw cpus sockets cores threads mem
    hw="$(slurmd -C 2>/dev/null | head -n1 || true)"
    field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$hw"; }
    cpus="$(field CPUs)"; sockets="$(field SocketsPerBoard)"; cores="$(field CoresPerSocket)"
    threads="$(field ThreadsPerCore)"; mem="$(field RealMemory)"
    local node="CPUs=${cpus:-$(nproc)}"
    if [ -n "$sockets" ] && [ -n "$cores" ] && [ -n "$threads" ]; then
        node="$node Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads"
    fi
    [ -n "$mem" ] || mem="$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)"
    mem=$((mem * 95 / 100))
    cat >"$CONF.tmp" <<EOF
# written by scripts/slurm-test-cluster.sh: a single-node test cluster on 127.0.0.1
ClusterName=mdark-test
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 $node RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    mv -f "$CONF.tmp" "$CONF"
}

start_daemons() {
    # munged wants its socket's directory searchable by all, and a key only its user can read.
    mkdir -p "$DIR/munge" "$DIR/run" "$DIR/log" "$DIR/state" "$DIR/spool"
    chmod 755 "$DIR" "$DIR/munge"
    if [ ! -s "$DIR/munge/munge.key" ]; then
        dd if=/dev/urandom of="$DIR/munge/munge.key.tmp" bs=1024 count=1 status=none
        chmod 400 "$DIR/munge/munge.key.tmp"
        mv -f "$DIR/munge/munge.key.tmp" "$DIR/munge/munge.key"
    fi
    write_conf
    # stdio to log files: the daemons must not hold a caller's pipe (CI) open.
    munged --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
        --seed-file="$DIR/munge/munged.seed" </dev/null >>"$DIR/log/daemons.out" 2>&1 \
        || die "munged did not start (see $DIR/munge/munged.log)"
    for _ in $(seq 1 50); do [ -S "$MUNGE_SOCKET" ] && break; sleep 0.1; done
    [ -S "$MUNGE_SOCKET" ] || die "munged made no socket $MUNGE_SOCKET (see $DIR/munge/munged.log)"
    # -c: start clean (no jobs or node state from an earlier run)
    slurmctld -c </dev/null >>"$DIR/log/daemons.out" 2>&1 \
        || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
    slurmd -c -N "$NODE" </dev/null >>"$DIR/log/daemons.out" 2>&1 \
        || die "slurmd did not start (see $DIR/log/slurmd.log)"
}

cmd_start() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (the daemons run as root; SLURM may need installing)"
    if command -v sinfo >/dev/null 2>&1 && all_running && node_up; then
        write_env
        say "already running"
        echo "$ENVFILE"
        return 0
    fi
    rm -f "$ENVFILE"
    any_running && cmd_stop
    mkdir -p "$DIR"
    install_slurm
    trap 'say "start failed; stopping what it started"; cmd_stop || true' EXIT
    start_daemons
    local t0=$SECONDS state="" entry
    while [ $((SECONDS - t0)) -lt 60 ]; do
        state="$(node_state)"
        case "$state" in idle* | mixed*) break ;; esac
        # a daemon that exited after daemonizing (a busy port, a bad config) ends the wait
        if [ $((SECONDS - t0)) -ge 3 ]; then
            for entry in "${PIDS[@]}"; do
                [ -n "$(live_pid "${entry%%:*}" "${entry##*:}")" ] && continue
                die "${entry##*:} exited: $(grep -h 'error\|fatal' "$DIR/log/${entry##*:}.log" "$DIR/munge/${entry##*:}.log" 2>/dev/null | tail -n1)"
            done
        fi
        sleep 0.2
    done
    case "$state" in
        idle* | mixed*) ;;
        *) die "node $NODE not up after 60 s (state '${state:-none}'); see $DIR/log/" ;;
    esac
    trap - EXIT
    write_env
    say "up: node $NODE ($state), partition $PARTITION, SLURM_CONF=$CONF"
    echo "$ENVFILE"
}

cmd_status() {
    command -v sinfo >/dev/null 2>&1 || die "not installed"
    all_running || die "not running"
    local state
    state="$(node_state)"
    case "$state" in idle* | mixed*) ;; *) die "node $NODE is '${state:-unknown}', not idle/mixed" ;; esac
    (cd "$DIR" && timeout 60 srun -N1 -n1 --mem=16 -t 1 -p "$PARTITION" true) >/dev/null 2>&1 \
        || die "node $NODE is $state but 'srun -N1 true' failed"
    say "up: node $NODE ($state), srun ok; env file $ENVFILE"
}

# TERM the daemons named by "pidfile:name" arguments together; KILL any still there after 10 s.
stop_daemons() {
    local entry pid pids=() names=() i left
    for entry in "$@"; do
        pid="$(live_pid "${entry%%:*}" "${entry##*:}")"
        [ -n "$pid" ] || continue
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid"); names+=("${entry##*:}")
    done
    for _ in $(seq 1 100); do
        left=0
        for i in "${!pids[@]}"; do
            alive "${pids[$i]}" "${names[$i]}" && left=1
        done
        [ "$left" -eq 0 ] && return 0
        sleep 0.1
    done
    for i in "${!pids[@]}"; do
        if alive "${pids[$i]}" "${names[$i]}"; then
            say "${names[$i]} (${pids[$i]}) ignored SIGTERM for 10 s; killing it"
            kill -KILL "${pids[$i]}" 2>/dev/null || true
        fi
    done
    sleep 0.5
}

cmd_stop() {
    rm -f "$ENVFILE"
    any_running || return 0
    local jobs
    # Cancel every job first: with proctrack/linuxproc a job's slurmstepd outlives slurmd.
    if [ -n "$(live_pid "$DIR/run/slurmctld.pid" slurmctld)" ] && command -v squeue >/dev/null 2>&1; then
        jobs="$(timeout 10 squeue -h -o '%A' 2>/dev/null || true)"
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            timeout 10 scancel $jobs >/dev/null 2>&1 || true
            for _ in $(seq 1 100); do
                [ -z "$(timeout 10 squeue -h -o '%A' 2>/dev/null || true)" ] && break
                sleep 0.1
            done
        fi
    fi
    stop_daemons "$DIR/run/slurmd.pid:slurmd" "$DIR/run/slurmctld.pid:slurmctld"
    # Any slurmstepd still there is one of our slurmd's (its environment names our slurm.conf).
    local p
    for p in $(pgrep -x slurmstepd || true); do
        alive "$p" slurmstepd || continue
        if { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$CONF"; then
            say "killing leftover slurmstepd $p"
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
    stop_daemons "$DIR/munge/munged.pid:munged"
    if any_running; then
        say "a daemon is still running after stop"
        return 1
    fi
    [ -t 2 ] && say "stopped"
    return 0
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
