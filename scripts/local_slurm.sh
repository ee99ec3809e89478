#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, with accounting (slurmdbd + MariaDB),
# for trying evsys sweeps on SLURM and for the `slurm`-marked tests.
#
#   sudo bash scripts/local_slurm.sh start     # install what is missing, configure, start, wait
#   sudo bash scripts/local_slurm.sh status    # exit 0 only when the cluster is usable
#   sudo bash scripts/local_slurm.sh stop      # stop every daemon this script started
#   sudo bash scripts/local_slurm.sh install   # only the Debian/Ubuntu packages
#
# Daemons are started directly in the background (no systemd needed: containers, CI, VMs).
# Accounting is not optional: without slurmdbd `sacct` fails and submitit cannot tell that
# a job died, so it may wait on it forever.
#
# Settings (environment):
#   LOCAL_SLURM_CLUSTER       cluster name in slurm.conf and accounting   (default: evsys)
#   LOCAL_SLURM_OVERSUBSCRIBE jobs that may share one CPU                  (default: 4)
#   LOCAL_SLURM_TIMEOUT       seconds to wait for each daemon / the node   (default: 60)
#   LOCAL_SLURM_FORCE=1       overwrite a slurm.conf this script did not write
set -euo pipefail

CLUSTER="${LOCAL_SLURM_CLUSTER:-evsys}"
OVERSUBSCRIBE="${LOCAL_SLURM_OVERSUBSCRIBE:-4}"
TIMEOUT="${LOCAL_SLURM_TIMEOUT:-60}"
ACCOUNT="evsys"
MARKER="# Written by evsys scripts/local_slurm.sh"

CONF_DIR=/etc/slurm
SLURM_CONF="$CONF_DIR/slurm.conf"
DBD_CONF="$CONF_DIR/slurmdbd.conf"
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
CTLD_SPOOL=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
MYSQL_RUN=/run/mysqld
MYSQL_SOCKET="$MYSQL_RUN/mysqld.sock"
MYSQL_PID="$MYSQL_RUN/local_slurm.pid" # exists only when this script started MariaDB
MUNGE_RUN=/run/munge
MUNGE_PID="$MUNGE_RUN/munged.pid"
MUNGE_KEY=/etc/munge/munge.key
DB_NAME=slurm_acct_db
DB_USER=slurm
CONF_CHANGED=0   # set when this run rewrote slurm.conf: running daemons are restarted

PACKAGES=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client)

log() { printf '[local_slurm] %s\n' "$*"; }
die() { printf '[local_slurm] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() {
    [[ $EUID -eq 0 ]] || die "run as root (sudo bash $0 $*)"
}

node_name() {
    local name
    name="$(hostname -s 2>/dev/null || true)"
    # slurm.conf node names: letters, digits, '-', '_' only.
    if [[ -z "$name" || ! "$name" =~ ^[A-Za-z0-9_-]+$ ]]; then
        name=localhost
    fi
    echo "$name"
}

# ---------------------------------------------------------------------------- install

missing_packages() {
    local pkg status
    for pkg in "${PACKAGES[@]}"; do
        status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == "install ok installed" ]] || echo "$pkg"
    done
}

cmd_install() {
    need_root install
    local missing
    mapfile -t missing < <(missing_packages)
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "packages already installed"
        return 0
    fi
    command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand"
    log "installing: ${missing[*]}"
    local t0=$SECONDS policy=/usr/sbin/policy-rc.d own_policy=0
    # Keep the packages' maintainer scripts from starting services with a config that
    # does not exist yet; this script starts the daemons itself.
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=1
    fi
    local rc=0
    {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq &&
            apt-get install -y -qq --no-install-recommends "${missing[@]}"
    } || rc=$?
    [[ $own_policy -eq 1 ]] && rm -f "$policy"
    [[ $rc -eq 0 ]] || die "apt-get install failed (exit $rc)"
    log "installed in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------------------- helpers

pid_alive() {   # pid_alive PIDFILE (also works for non-root callers of `status`)
    local pid
    pid="$(cat "$1" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ && -d "/proc/$pid" ]]
}

# wait_for DESCRIPTION LOGFILE COMMAND...: poll COMMAND until it succeeds, at most TIMEOUT s.
wait_for() {
    local what="$1" logfile="$2"
    shift 2
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            printf '[local_slurm] ERROR: timed out after %s s waiting for %s\n' \
                "$TIMEOUT" "$what" >&2
            if [[ -n "$logfile" && -f "$logfile" ]]; then
                echo "---- last lines of $logfile ----" >&2
                tail -n 30 "$logfile" >&2
            fi
            exit 1
        fi
        sleep 1
    done
}

stop_pidfile() {   # stop_pidfile NAME PIDFILE: TERM, wait, then KILL
    local name="$1" pidfile="$2" pid i
    pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid="$(<"$pidfile")"
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop in 15 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

mysql_up() { mariadb-admin --socket="$MYSQL_SOCKET" ping >/dev/null 2>&1; }
munge_up() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
sacct_up() { sacct -n -X -S now-1minutes >/dev/null 2>&1; }
node_state() { sinfo -h -N -n "$(node_name)" -o %T 2>/dev/null | head -n 1; }
node_usable() {
    case "$(node_state)" in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

# ---------------------------------------------------------------------------- munge

start_munge() {
    if [[ ! -s "$MUNGE_KEY" ]]; then
        log "creating $MUNGE_KEY"
        install -d -o munge -g munge -m 700 /etc/munge
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
    chown munge:munge "$MUNGE_KEY"
    chmod 400 "$MUNGE_KEY"
    install -d -o munge -g munge -m 755 "$MUNGE_RUN"
    install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
    if munge_up; then
        log "munged already running"
        return 0
    fi
    log "starting munged"
    # munged refuses to run as root with a key owned by munge; run it as its own user.
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID" ||
        die "munged failed to start; see /var/log/munge/munged.log"
    wait_for "munged" /var/log/munge/munged.log munge_up
}

# ---------------------------------------------------------------------------- mariadb

start_mariadb() {
    install -d -o mysql -g mysql -m 755 "$MYSQL_RUN"
    if mysql_up; then
        log "MariaDB already running (socket $MYSQL_SOCKET)"
        return 0
    fi
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        log "initialising the MariaDB data directory"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql \
            >"$LOG_DIR/mariadb-install.log" 2>&1 ||
            die "mariadb-install-db failed; see $LOG_DIR/mariadb-install.log"
    fi
    log "starting MariaDB"
    touch "$LOG_DIR/mariadb.log"
    chown mysql:mysql "$LOG_DIR/mariadb.log"
    # Socket only (--skip-networking): never clashes with another server on port 3306.
    setsid nohup /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql \
        --socket="$MYSQL_SOCKET" --pid-file="$MYSQL_PID" --skip-networking \
        --log-error="$LOG_DIR/mariadb.log" \
        --innodb-buffer-pool-size=1G --innodb-log-file-size=64M \
        --innodb-lock-wait-timeout=900 \
        </dev/null >>"$LOG_DIR/mariadb.log" 2>&1 &
    wait_for "MariaDB" "$LOG_DIR/mariadb.log" mysql_up
}

# The password lives only in slurmdbd.conf (mode 600); re-runs reuse it.
db_password() {
    local pass=""
    if [[ -f "$DBD_CONF" ]]; then
        pass="$(sed -n 's/^StoragePass=//p' "$DBD_CONF" | head -n 1)"
    fi
    if [[ -z "$pass" ]]; then
        pass="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    fi
    echo "$pass"
}

setup_database() {
    local pass="$1"
    mariadb --socket="$MYSQL_SOCKET" -u root <<SQL
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$pass';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
SQL
}

# ---------------------------------------------------------------------------- configs

guard_foreign_conf() {
    if [[ -f "$SLURM_CONF" ]] && ! grep -qF "$MARKER" "$SLURM_CONF" &&
        [[ "${LOCAL_SLURM_FORCE:-0}" != 1 ]]; then
        die "$SLURM_CONF was not written by this script; refusing to overwrite it" \
            "(LOCAL_SLURM_FORCE=1 to overwrite)"
    fi
}

# Physical memory in MB, capped by a cgroup v2 limit when there is one.
memory_mb() {
    local mem limit
    mem=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
    if [[ -r /sys/fs/cgroup/memory.max ]]; then
        limit="$(</sys/fs/cgroup/memory.max)"
        if [[ "$limit" =~ ^[0-9]+$ ]] && ((limit / 1048576 < mem)); then
            mem=$((limit / 1048576))
        fi
    fi
    echo "$mem"
}

write_dbd_conf() {
    local pass="$1" tmp
    tmp="$(mktemp "$CONF_DIR/.slurmdbd.conf.XXXXXX")"
    cat >"$tmp" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$RUN_DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=$DB_NAME
StorageUser=$DB_USER
StoragePass=$pass
EOF
    chown root:root "$tmp"
    chmod 600 "$tmp"
    mv -f "$tmp" "$DBD_CONF"
}

write_slurm_conf() {
    local node cpus mem real defmem tmp
    node="$(node_name)"
    cpus="$(nproc)"
    mem="$(memory_mb)"
    # Leave the OS and the daemons ~10% (at least 512 MB).
    real=$((mem - (mem / 10 > 512 ? mem / 10 : 512)))
    ((real > 256)) || real=256
    # Without a default, a job would claim all the node's memory and run alone.
    defmem=$((real / (cpus * OVERSUBSCRIBE)))
    ((defmem < 1024)) || defmem=1024
    tmp="$(mktemp "$CONF_DIR/.slurm.conf.XXXXXX")"
    cat >"$tmp" <<EOF
$MARKER
# A single-node test cluster; rerun the script rather than editing by hand.
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# Credential lifetime; also how long a requeued job waits before it may start again
# (default 120 s, which makes requeue tests slow).
AuthInfo=cred_expire=10
MpiDefault=none
MailProg=/bin/true

StateSaveLocation=$CTLD_SPOOL
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups: works in containers and VMs alike.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30

SchedulerType=sched/backfill
# Look at pending jobs every few seconds (e.g. a requeued job whose BeginTime has passed).
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$defmem
PreemptType=preempt/none
JobRequeue=1
ReturnToService=2
# The node's resources are whatever this file says, even if slurmd counts differently.
SlurmdParameters=config_overrides

# Short timeouts: a test cluster should notice failures and forget jobs quickly.
MinJobAge=60
KillWait=5
InactiveLimit=0
Waittime=0
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=30
UnkillableStepTimeout=30

AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none

NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:$OVERSUBSCRIBE
EOF
    chmod 644 "$tmp"
    if cmp -s "$tmp" "$SLURM_CONF"; then
        rm -f "$tmp"
        return 0
    fi
    mv -f "$tmp" "$SLURM_CONF"
    CONF_CHANGED=1
    log "wrote $SLURM_CONF: node $node, $cpus CPUs, RealMemory=$real MB, DefMemPerCPU=$defmem MB"
}

# ---------------------------------------------------------------------------- slurm daemons

start_slurmdbd() {
    if pid_alive "$RUN_DIR/slurmdbd.pid"; then
        log "slurmdbd already running"
    else
        log "starting slurmdbd"
        slurmdbd || die "slurmdbd failed to start; see $LOG_DIR/slurmdbd.log"
    fi
    # sacctmgr answers once slurmdbd is connected to the database.
    wait_for "slurmdbd" "$LOG_DIR/slurmdbd.log" sacctmgr -n show cluster
}

register_accounting() {
    if [[ -z "$(sacctmgr -n -P show cluster "$CLUSTER" format=cluster)" ]]; then
        log "registering cluster $CLUSTER in accounting"
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    if [[ -z "$(sacctmgr -n -P show account "$ACCOUNT" format=account)" ]]; then
        sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" \
            Description="evsys local test cluster" Organization=evsys >/dev/null
    fi
    local user users=(root)
    [[ -n "${SUDO_USER:-}" && "${SUDO_USER}" != root ]] && users+=("$SUDO_USER")
    for user in "${users[@]}"; do
        if [[ -z "$(sacctmgr -n -P show assoc cluster="$CLUSTER" account="$ACCOUNT" \
            user="$user" format=user)" ]]; then
            sacctmgr -i add user "$user" Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
        fi
    done
}

start_slurmctld() {
    if pid_alive "$RUN_DIR/slurmctld.pid" && [[ $CONF_CHANGED -eq 1 ]]; then
        log "slurm.conf changed; restarting slurmctld"
        stop_pidfile slurmctld "$RUN_DIR/slurmctld.pid"
    fi
    if pid_alive "$RUN_DIR/slurmctld.pid"; then
        log "slurmctld already running"
    else
        log "starting slurmctld"
        slurmctld || die "slurmctld failed to start; see $LOG_DIR/slurmctld.log"
    fi
    wait_for "slurmctld" "$LOG_DIR/slurmctld.log" scontrol ping
}

start_slurmd() {
    local node
    node="$(node_name)"
    if pid_alive "$RUN_DIR/slurmd.pid" && [[ $CONF_CHANGED -eq 1 ]]; then
        log "slurm.conf changed; restarting slurmd"
        stop_pidfile slurmd "$RUN_DIR/slurmd.pid"
    fi
    if pid_alive "$RUN_DIR/slurmd.pid"; then
        log "slurmd already running"
    else
        log "starting slurmd (node $node)"
        slurmd -N "$node" || die "slurmd failed to start; see $LOG_DIR/slurmd.log"
    fi
    # A node left DOWN/DRAINED by an earlier run is put back to work.
    local deadline=$((SECONDS + 10))
    until node_usable || ((SECONDS >= deadline)); do sleep 1; done
    if ! node_usable; then
        case "$(node_state)" in
            *drain* | *down* | *fail*)
                log "node is $(node_state); resuming it"
                scontrol update NodeName="$node" State=RESUME || true
                ;;
        esac
    fi
    wait_for "node $node to be idle" "$LOG_DIR/slurmd.log" node_usable
}

cmd_start() {
    need_root start
    local t0=$SECONDS
    cmd_install
    guard_foreign_conf
    install -d -m 755 "$CONF_DIR" "$LOG_DIR" "$RUN_DIR"
    install -d -m 700 "$CTLD_SPOOL" "$SLURMD_SPOOL"
    start_munge
    start_mariadb
    local pass
    pass="$(db_password)"
    setup_database "$pass"
    write_dbd_conf "$pass"
    write_slurm_conf
    start_slurmdbd
    register_accounting
    start_slurmctld
    start_slurmd
    wait_for "sacct" "$LOG_DIR/slurmdbd.log" sacct_up
    log "cluster up in $((SECONDS - t0)) s"
    cmd_status
}

# ---------------------------------------------------------------------------- stop / status

cmd_stop() {
    need_root stop
    stop_pidfile slurmd "$RUN_DIR/slurmd.pid"
    stop_pidfile slurmctld "$RUN_DIR/slurmctld.pid"
    stop_pidfile slurmdbd "$RUN_DIR/slurmdbd.pid"
    stop_pidfile MariaDB "$MYSQL_PID"
    stop_pidfile munged "$MUNGE_PID"
    log "stopped"
}

cmd_status() {
    local ok=0 name pidfile
    local -A up=()
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        case $name in
            munged) pidfile="$MUNGE_PID" ;;
            mariadbd) pidfile="$MYSQL_PID" ;;
            *) pidfile="$RUN_DIR/$name.pid" ;;
        esac
        if pid_alive "$pidfile"; then
            printf '  %-10s running (pid %s)\n' "$name" "$(cat "$pidfile")"
            up[$name]=1
        elif [[ $name == munged ]] && munge_up; then
            printf '  %-10s running (answers; no pid file of ours)\n' "$name"
            up[$name]=1
        elif [[ $name == mariadbd ]] && mysql_up; then
            printf '  %-10s running (answers; no pid file of ours)\n' "$name"
            up[$name]=1
        else
            printf '  %-10s NOT running\n' "$name"
            ok=1
        fi
    done
    if ! command -v sinfo >/dev/null; then
        echo "  SLURM is not installed: run '$0 start'"
        return 1
    fi
    # The clients retry for ~10 s against a daemon that is down; ask only running ones.
    if [[ -z "${up[slurmctld]:-}" ]]; then
        echo "  node       unknown (slurmctld is not running)"
    elif node_usable; then
        echo "  node       $(node_name) is $(node_state)"
    else
        echo "  node       $(node_name) is NOT usable (state: $(node_state || true))"
        ok=1
    fi
    if [[ -n "${up[slurmdbd]:-}" ]] && sacct_up; then
        echo "  sacct      answers"
    else
        echo "  sacct      does NOT answer"
        ok=1
    fi
    if [[ -n "${up[slurmctld]:-}" ]]; then
        echo
        sinfo 2>&1 || true
        echo
        squeue 2>&1 || true
    fi
    if [[ $ok -eq 0 ]]; then
        log "cluster usable (logs: $LOG_DIR)"
    else
        log "cluster NOT usable (logs: $LOG_DIR; start it with: $0 start)"
    fi
    return $ok
}

usage() {
    echo "usage: $0 {start|stop|status|install}" >&2
    exit 2
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    install) cmd_install ;;
    *) usage ;;
esac
