#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for trying `shieldbench jobs --slurm` before a
# cluster (and for tests/eval/test_slurm.py). Debian/Ubuntu: `sudo apt-get install slurm-wlm`.
#
#   scripts/slurm-local.sh up      # writes a config, starts slurmctld and slurmd, prints SLURM_CONF
#   export SLURM_CONF=$HOME/.cache/shieldbench/slurm/slurm.conf    # then sbatch, squeue, scontrol ...
#   scripts/slurm-local.sh status
#   scripts/slurm-local.sh down    # stops both daemons (the state directory stays; delete it at will)
#
# Everything lives in one state directory, $SHIELDBENCH_SLURM_DIR (default
# ~/.cache/shieldbench/slurm): config, daemon state, spool, logs and pid files; nothing is
# written under /etc or /var. The node gets this machine's cores and 90% of its memory. The
# daemons run as the calling user (jobs then run as that user only), with auth/none: this is a
# cluster for one user on one machine, not a secure multi-user setup. Ports: $SLURM_LOCAL_PORT
# (slurmctld, default 16817) and the next one (slurmd).
set -euo pipefail
action=${1:-}
dir=${SHIELDBENCH_SLURM_DIR:-${HOME}/.cache/shieldbench/slurm}
port=${SLURM_LOCAL_PORT:-16817}
conf="$dir/slurm.conf"

die() { echo "slurm-local: $*" >&2; exit 1; }

running() {  # pid file -> 0 if that process is alive
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

up() {
  for prog in slurmctld slurmd sinfo; do
    command -v "$prog" >/dev/null || die "$prog not found: install SLURM (Debian/Ubuntu: sudo apt-get install slurm-wlm)"
  done
  if running "$dir/slurmctld.pid" || running "$dir/slurmd.pid"; then
    die "already up in $dir (scripts/slurm-local.sh down first)"
  fi
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  local host cpus mem_mb user
  host=$(hostname -s)
  cpus=$(nproc)
  mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  user=$(id -un)
  cat > "$conf" <<EOF
# written by scripts/slurm-local.sh: a one-node cluster for one user (see that script)
ClusterName=shieldbench-local
SlurmctldHost=$host
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobRequeue=1
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=$port
SlurmdPort=$((port + 1))
MinJobAge=3600
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  SLURM_CONF=$conf slurmctld -f "$conf" || die "slurmctld did not start; see $dir/log/slurmctld.log"
  SLURM_CONF=$conf slurmd -f "$conf" || die "slurmd did not start; see $dir/log/slurmd.log"
  for _ in $(seq 1 60); do  # wait until the node takes jobs
    if SLURM_CONF=$conf sinfo -h -o %t 2>/dev/null | grep -qx idle; then
      echo "SLURM is up: $cpus CPUs, $mem_mb MB on $host (state in $dir)"
      echo "export SLURM_CONF=$conf"
      return 0
    fi
    sleep 0.5
  done
  die "the node did not become idle in 30 s; see $dir/log/"
}

down() {
  local pidfile pid
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    if running "$pidfile"; then
      pid=$(cat "$pidfile")
      kill "$pid"
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
  done
  echo "SLURM is down (state kept in $dir)"
}

case "$action" in
  up) up ;;
  down) down ;;
  status)
    if running "$dir/slurmctld.pid" && running "$dir/slurmd.pid"; then
      SLURM_CONF=$conf sinfo
    else
      echo "SLURM is not running (state directory $dir)"; exit 3
    fi ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
