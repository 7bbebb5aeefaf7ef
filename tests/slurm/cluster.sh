#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, with accounting (slurmdbd on MariaDB), for the
# tests and for trying profiles/slurm by hand (docs/slurm.md, "A cluster on your machine").
# Needs root and Debian's packages (`install` fetches them with apt-get, about 40 s).
#
#   tests/slurm/cluster.sh install          apt-get install slurm-wlm slurmdbd munge mariadb-server
#   tests/slurm/cluster.sh start            start munged, MariaDB, slurmdbd, slurmctld, slurmd (~5 s)
#   tests/slurm/cluster.sh start --no-accounting   the same without slurmdbd: sacct says
#                                           "accounting storage is disabled", as on some sites
#   tests/slurm/cluster.sh stop             stop every daemon it started, remove what it wrote
#   tests/slurm/cluster.sh status           sinfo, or why there is no cluster
#   tests/slurm/cluster.sh slurmd-stop|slurmd-start   a node failure: slurmd and its jobs die
#                                           (slurmd-stop), then the node comes back
#
# The node is this machine (all its CPUs, its memory less 2 GB for the system) in two partitions
# of the same node: `main` (the default, no GPUs) and `gpu` with GRES gpu:2, whose "GPUs" are two
# character devices that are not GPUs (SLURM schedules them and sets CUDA_VISIBLE_DEVICES; no
# CUDA behind them). Account `promptlam-test` for root and the invoking user. Preemption by
# partition priority (PreemptMode=REQUEUE): a partition of a higher PriorityTier, created with
# `scontrol create PartitionName=urgent Nodes=$(hostname -s) PriorityTier=10`, preempts jobs.
# Everything but the three files in /etc/slurm lives in $PROMPTLAM_SLURM_STATE (default
# /tmp/promptlam-slurm); `stop` removes the files it wrote in /etc/slurm, and it refuses to
# overwrite a slurm.conf it did not write.
set -euo pipefail

STATE="${PROMPTLAM_SLURM_STATE:-/tmp/promptlam-slurm}"
ETC=/etc/slurm
MARK="# written by promptlam tests/slurm/cluster.sh"
ACCOUNT=promptlam-test
CLUSTER=promptlam
DB_PORT="${PROMPTLAM_SLURM_DB_PORT:-3317}"
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)

say() { echo "cluster.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it starts system daemons and writes $ETC)"
}

installed() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v slurmdbd >/dev/null \
        && command -v munged >/dev/null && command -v mariadbd >/dev/null
}

cmd_install() {
    need_root
    if installed; then say "packages already installed"; return; fi
    command -v apt-get >/dev/null || die "no apt-get: install ${PACKAGES[*]} with your package manager"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
}

# ---- configuration --------------------------------------------------------------------------

write_owned() {  # write stdin to $1 unless an existing file there was not written by us
    local path=$1
    if [[ -e $path ]] && ! grep -qF "$MARK" "$path"; then
        die "$path exists and was not written by this script: not overwriting it (stop your SLURM first)"
    fi
    { echo "$MARK"; cat; } > "$path"
}

write_config() {
    local accounting=$1 node cpus mem_kb mem_mb
    node=$(hostname -s)
    cpus=$(nproc)
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    mem_mb=$(( mem_kb / 1024 - 2048 ))
    mkdir -p "$ETC" "$STATE"/{spool/ctld,spool/d,log,run,dev}
    chown -R slurm:slurm "$STATE/spool/ctld"
    # the node's two "GPUs": character devices that are not GPUs (SLURM only needs files to hand out)
    for i in 0 1; do [[ -c $STATE/dev/gpu$i ]] || mknod "$STATE/dev/gpu$i" c 1 3; done
    local storage="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
# sacct shows each job's comment (the executor plugin writes the rule and wildcards there) and GPUs
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment"
    [[ $accounting == yes ]] || storage="AccountingStorageType=accounting_storage/none"
    write_owned "$ETC/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$node
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# no cgroups in a container: processes are tracked through /proc, tasks are not confined
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
$storage
JobAcctGatherType=jobacct_gather/none
# a node that comes back after a failure is used again at once
ReturnToService=2
SlurmdTimeout=10
SchedulerType=sched/backfill
# a partition of a higher PriorityTier (the tests create one) preempts jobs of the others: cancelled
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
NodeName=$node CPUs=$cpus RealMemory=$mem_mb Gres=gpu:2 State=UNKNOWN
PartitionName=main Nodes=$node Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$node MaxTime=INFINITE State=UP
EOF
    write_owned "$ETC/gres.conf" <<EOF
Name=gpu File=$STATE/dev/gpu0
Name=gpu File=$STATE/dev/gpu1
EOF
    write_owned "$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=promptlam
StorageLoc=slurm_acct_db
EOF
    chown slurm:slurm "$ETC/slurmdbd.conf"
    chmod 600 "$ETC/slurmdbd.conf"
}

# ---- daemons --------------------------------------------------------------------------------

wait_for() {  # wait_for SECONDS DESCRIPTION 'SHELL COMMAND' (each try at most 5 s)
    local seconds=$1 what=$2 command=$3
    local deadline=$((SECONDS + seconds))
    while ((SECONDS < deadline)); do
        if timeout 5 bash -c "$command" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    die "$what did not come up within $seconds s (logs: $STATE/log)"
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

MUNGE_WORKS="munge -n | unmunge"

start_munge() {
    if bash -c "$MUNGE_WORKS" >/dev/null 2>&1; then return; fi  # a munged of this machine's own
    if [[ ! -s /etc/munge/munge.key ]]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        touch "$STATE/wrote-munge-key"
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- munged
    touch "$STATE/started-munged"
    wait_for 10 munged "$MUNGE_WORKS"
}

# MariaDB's files, owned by its user: data, socket, pid file and log
DB="$STATE/db"
mysql_client() { mariadb --socket="$DB/mysql.sock" -uroot "$@"; }

start_mariadb() {
    if [[ ! -d $DB/data/mysql ]]; then
        mkdir -p "$DB/data"
        chown -R mysql:mysql "$DB"
        mariadb-install-db --user=mysql --datadir="$DB/data" --auth-root-authentication-method=socket \
            >"$STATE/log/mariadb-install.log" 2>&1
    fi
    if ! pid_alive "$DB/mysqld.pid"; then
        runuser -u mysql -- mariadbd --no-defaults --datadir="$DB/data" --socket="$DB/mysql.sock" \
            --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$DB/mysqld.pid" \
            --log-error="$DB/mariadb.log" --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
        wait_for 30 MariaDB "mariadb --socket=$DB/mysql.sock -uroot -e 'select 1'"
    fi
    mysql_client -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'promptlam';
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'promptlam';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

add_associations() {
    sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=tests organization=promptlam >/dev/null 2>&1 || true
    local users=(root)
    if [[ -n ${SUDO_USER:-} && ${SUDO_USER} != root ]]; then users+=("$SUDO_USER"); fi
    for user in "${users[@]}"; do
        sacctmgr -i add user "$user" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null 2>&1 || true
    done
}

start_slurmd() {  # and wait until the node answers (idle, or still busy with jobs it had)
    slurmd -f "$ETC/slurm.conf"
    wait_for 60 "slurmd (node responding)" "sinfo -h -N -o %t | grep -qE '^(idle|mix|alloc|comp)\$'"
}

cmd_start() {
    need_root
    local accounting=yes
    [[ ${1:-} == --no-accounting ]] && accounting=no
    installed || die "SLURM is not installed: run '$0 install' first (apt-get, about 40 s)"
    if pid_alive "$STATE/run/slurmctld.pid"; then die "a cluster is already running (stop it first: $0 stop)"; fi
    mkdir -p "$STATE/log"
    write_config "$accounting"
    start_munge
    if [[ $accounting == yes ]]; then
        start_mariadb
        pid_alive "$STATE/run/slurmdbd.pid" || slurmdbd
        wait_for 30 slurmdbd "sacctmgr -n list cluster"
        add_associations
    fi
    slurmctld -f "$ETC/slurm.conf"
    wait_for 30 slurmctld "scontrol ping | grep -q UP"
    start_slurmd
    wait_for 30 "the node (idle)" "sinfo -h -N -o %t | grep -qx idle"
    say "cluster $CLUSTER is up (accounting: $accounting): partitions main and gpu, account $ACCOUNT"
    sinfo
}

stop_pidfile() {  # stop_pidfile FILE: TERM the daemon, KILL it after 10 s
    local file=$1 pid
    [[ -f $file ]] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

kill_jobs() {  # every job step on the node and every process under it, as a crash would
    local steps pids
    steps=$(pgrep -x slurmstepd | tr '\n' ' ' || true)
    [[ -n $steps ]] || return 0
    # the steps' descendants: walk the process table from the steps down
    pids=$(ps -e -o pid=,ppid= | awk -v roots="$steps" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
        { parent[$1] = $2 }
        END { do { added = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; added = 1 } } while (added)
              for (p in keep) print p }')
    kill -KILL $pids 2>/dev/null || true
}

cmd_stop() {
    need_root
    scancel --user=root --quiet 2>/dev/null || true
    stop_pidfile "$STATE/run/slurmd.pid"
    kill_jobs
    stop_pidfile "$STATE/run/slurmctld.pid"
    stop_pidfile "$STATE/run/slurmdbd.pid"
    stop_pidfile "$DB/mysqld.pid"
    if [[ -f $STATE/started-munged ]]; then pkill -x munged 2>/dev/null || true; fi
    if [[ -f $STATE/wrote-munge-key ]]; then rm -f /etc/munge/munge.key; fi
    for file in slurm.conf gres.conf slurmdbd.conf; do
        if [[ -f $ETC/$file ]] && grep -qF "$MARK" "$ETC/$file"; then rm -f "$ETC/$file"; fi
    done
    rm -rf "$STATE"
    say "stopped; $STATE removed"
}

cmd_status() {
    if ! pid_alive "$STATE/run/slurmctld.pid"; then say "no cluster running"; exit 1; fi
    sinfo
}

case "${1:-}" in
    install) cmd_install ;;
    start) shift; cmd_start "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    slurmd-stop) need_root; stop_pidfile "$STATE/run/slurmd.pid"; kill_jobs ;;
    slurmd-start) need_root; start_slurmd ;;
    *) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
