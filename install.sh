#!/bin/sh
# Berth installer: sets Berth up on a Debian or Ubuntu server and starts the agent.
# Run it again to upgrade; `--uninstall` removes it. `--help` lists every option.
#
#   curl -fsSL <this script's URL> | sudo sh -s -- --domain apps.example.com --email me@example.com
#   sudo ./install.sh --domain apps.example.com      (from a checkout of Berth)
#
# Steps, each skipped when already done: preflight checks; Docker (an engine that works
# is used as it is), git, OpenSSH, nftables, python3-venv from apt; the `berth` user;
# Berth from a wheel into PREFIX/venv; /etc/berth/berth.toml (only if missing); the
# agent under systemd, a SysV init script, or a respawning loop; the firewall (summary
# first, then on, and loaded again at boot before the network); the SSH keys that may push.
set -eu

# The release this script belongs to, pinned when a release is cut (.ci/release): the
# wheel's URL and its SHA-256. A download is installed only when its SHA-256 matches.
RELEASE_URL=""
RELEASE_SHA256=""

usage() {
    cat <<'EOF'
Usage: install.sh [options]          (as root; every option also has an environment variable)

  --domain DOMAIN       apps answer on APP.DOMAIN                        BERTH_DOMAIN
  --email EMAIL         Let's Encrypt account e-mail                     BERTH_EMAIL
  --ssh-key "KEY"       a public key that may push (else root's and      BERTH_SSH_KEY
                        the sudo user's authorized_keys)
  --ssh-key-file FILE   a file of public keys that may push              BERTH_SSH_KEY_FILE
  --no-firewall         leave the host firewall off                      BERTH_NO_FIREWALL=1
  --source SOURCE       Berth to install: a checkout, a wheel, a tarball BERTH_SOURCE
                        (path, file:// or https:// URL)
  --sha256 HEX          the SHA-256 the --source wheel or tarball must   BERTH_SHA256
                        have (a release's install.sh pins its own)
  --force               install on an unsupported OS or architecture,    BERTH_FORCE=1
                        or a small machine
  --no-start            install only, start nothing                      BERTH_NO_START=1
  --uninstall           remove the service, code, hooks and firewall table (data stays)
  --purge               with --uninstall: remove data, config, logs, apps and the user too
  -h, --help            this help
Paths: BERTH_PREFIX (/opt/berth), BERTH_BIN_DIR (/usr/local/bin),
       BERTH_CONFIG (/etc/berth/berth.toml). BERTH_NO_KEYS=1 adds no key.
EOF
}

say() { printf -- '-----> %s\n' "$*"; }
note() { printf -- '       %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

read_settings() {  # every setting from its environment variable, or its default
    DOMAIN=${BERTH_DOMAIN:-}
    EMAIL=${BERTH_EMAIL:-}
    SSH_KEY=${BERTH_SSH_KEY:-}
    SSH_KEY_FILE=${BERTH_SSH_KEY_FILE:-}
    NO_FIREWALL=${BERTH_NO_FIREWALL:-0}
    SOURCE=${BERTH_SOURCE:-}
    SHA256=${BERTH_SHA256:-}
    FORCE=${BERTH_FORCE:-0}
    NO_START=${BERTH_NO_START:-0}
    ACTION=install
    PURGE=0
    PREFIX=${BERTH_PREFIX:-/opt/berth}
    BIN_DIR=${BERTH_BIN_DIR:-/usr/local/bin}
    CONFIG=${BERTH_CONFIG:-/etc/berth/berth.toml}
    BERTH="$BIN_DIR/berth"
    SUPERVISOR=/usr/local/sbin/berth-supervise
    SUPERVISE_PID=/run/berth-supervise.pid
    AGENT_LOGS=/var/log/berth  # the agent's own log and what it prints before logging starts
    AGENT_PID=/run/berth-agent.pid
    FIREWALL_BOOT=/usr/local/sbin/berth-firewall-boot
    RESTARTS_FILE=/run/berth-supervise.restarts
    # What the preflight reads of the system (the tests point these at files of their own).
    OS_RELEASE=${BERTH_OS_RELEASE:-/etc/os-release}
    MEMINFO=${BERTH_MEMINFO:-/proc/meminfo}
    PROC_NET=${BERTH_PROC_NET:-/proc/net}
}

printable() { printf '%s' "$1" | tr -c '[:print:]' '?'; }  # a value to echo on one line

need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }

parse_args() {  # the flags, over the environment's settings
    while [ $# -gt 0 ]; do
        case $1 in
            --domain) need_value "$@"; DOMAIN=$2; shift ;;
            --email) need_value "$@"; EMAIL=$2; shift ;;
            --ssh-key) need_value "$@"; SSH_KEY=$2; shift ;;
            --ssh-key-file) need_value "$@"; SSH_KEY_FILE=$2; shift ;;
            --source) need_value "$@"; SOURCE=$2; shift ;;
            --sha256) need_value "$@"; SHA256=$2; shift ;;
            --no-firewall) NO_FIREWALL=1 ;;
            --force) FORCE=1 ;;
            --no-start) NO_START=1 ;;
            --uninstall) ACTION=uninstall ;;
            --purge) PURGE=1 ;;
            -h|--help) usage; exit 0 ;;
            *) die "unknown option $1 (see --help)" ;;
        esac
        shift
    done
    [ "$PURGE" = 0 ] || [ "$ACTION" = uninstall ] || die "--purge goes with --uninstall"
    if [ -n "$SHA256" ]; then
        [ -n "$SOURCE" ] || die "--sha256 goes with --source"
        case $SHA256 in
            *[!0-9a-f]*) die "--sha256 $SHA256: not a SHA-256 (64 hex digits, lowercase)" ;;
        esac
        [ ${#SHA256} = 64 ] || die "--sha256 $SHA256: not a SHA-256 (64 hex digits, lowercase)"
    fi
    # Checked before anything changes: both are written into berth.toml as they are.
    case $DOMAIN in
        ''|*[!a-z0-9.-]*|.*|*.) [ -z "$DOMAIN" ] || die "--domain $(printable "$DOMAIN"): not a domain name" ;;
    esac
    case $EMAIL in
        ''|*@*.*) ;;
        *) die "--email $(printable "$EMAIL"): not an e-mail address" ;;
    esac
    case $EMAIL in
        *[!A-Za-z0-9._%+@-]*|*@*@*|@*|*@.*|*.) die "--email $(printable "$EMAIL"): not an e-mail address" ;;
    esac
    if [ "$CONFIG" = /etc/berth/berth.toml ]; then SSH_COMMAND="$BERTH"
    else SSH_COMMAND="env BERTH_CONFIG=$CONFIG $BERTH"; fi
}

berth() { BERTH_CONFIG=$CONFIG "$BERTH" "$@"; }

config_value() {  # KEY DEFAULT: KEY's value in CONFIG (its first `KEY = "..."` line), else DEFAULT
    found=$(sed -n "s/^$1 *= *\"\(.*\)\"/\1/p" "$CONFIG" 2>/dev/null | head -n 1)
    echo "${found:-$2}"
}

has_systemd() { [ -d /run/systemd/system ]; }
has_sysv() { [ -d /etc/init.d ] && command -v update-rc.d >/dev/null 2>&1; }

# -- preflight -----------------------------------------------------------------------

preflight() {
    [ "$(id -u)" = 0 ] || die "run as root (sudo sh install.sh)"
    command -v apt-get >/dev/null 2>&1 || die "needs Debian 12 or Ubuntu 22.04/24.04 (no apt-get here)"
    check_os
    case $(uname -m) in
        x86_64|aarch64) ;;
        *) [ "$FORCE" = 1 ] || die "unsupported architecture $(uname -m) (x86_64 or aarch64; --force to try anyway)" ;;
    esac
    check_size
    for port in 80 443; do check_port "$port"; done
}

check_os() {
    # shellcheck disable=SC1090
    id=$(. "$OS_RELEASE" 2>/dev/null && echo "${ID:-}-${VERSION_ID:-}")
    case $id in
        debian-12|ubuntu-22.04|ubuntu-24.04) ;;
        -|'') [ "$FORCE" = 1 ] || die "cannot tell the system from $OS_RELEASE (Debian 12, Ubuntu 22.04/24.04; --force to try anyway)" ;;
        *) [ "$FORCE" = 1 ] || die "unsupported system $id (Debian 12, Ubuntu 22.04/24.04; --force to try anyway)" ;;
    esac
}

check_size() {
    memory=$(awk '/^MemTotal:/ {print int($2 / 1024)}' "$MEMINFO" 2>/dev/null)
    [ -n "$memory" ] || die "cannot read the memory size from $MEMINFO"
    [ "$memory" -ge 900 ] || [ "$FORCE" = 1 ] \
        || die "${memory} MiB of memory; Berth needs 1 GiB (--force to try anyway)"
    mkdir -p /var/lib
    disk=$(df -Pm /var/lib | awk 'NR == 2 {print $4}')
    [ -n "$disk" ] || die "cannot read the free space in /var/lib (df -Pm /var/lib)"
    [ "$disk" -ge 5120 ] || [ "$FORCE" = 1 ] \
        || die "${disk} MiB free in /var/lib; Berth needs 5 GiB for images (--force to try anyway)"
}

check_port() {
    if ! holder=$(port_holder "$1"); then
        note "Could not check that port $1 is free (neither ss nor /proc/net/tcp here): Berth's proxy needs it"
        return 0
    fi
    [ -n "$holder" ] || return 0
    if has_systemd && systemctl is-active --quiet berth.socket; then
        return 0  # held for Berth's agent by berth.socket: this is an upgrade
    fi
    pid=${holder##* }
    if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q 'berth.* agent'; then
        return 0  # Berth's own agent: this is an upgrade
    fi
    [ "$pid" != "?" ] || die "port $1 is taken (by no process this installer can see): Berth's proxy needs 80 and 443"
    die "port $1 is taken by ${holder% *} (pid $pid): stop it first, Berth's proxy needs 80 and 443"
}

port_holder() {  # "NAME PID" of what listens on TCP port $1 ("" for nothing); fails if it cannot tell
    if command -v ss >/dev/null 2>&1; then
        ss -Hltnp "sport = :$1" 2>/dev/null \
            | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 \2/p' | head -n 1
    elif [ -r "$PROC_NET/tcp" ]; then
        proc_port_holder "$1"
    else
        return 1
    fi
}

proc_port_holder() {  # port_holder without ss: the listening socket in /proc/net, its process
    inode=$(cat "$PROC_NET/tcp" "$PROC_NET/tcp6" 2>/dev/null | awk -v port=":$(printf '%04X' "$1")" \
        '$4 == "0A" && substr($2, length($2) - 4) == port {print $10; exit}')
    [ -n "$inode" ] || return 0
    pid=$(find /proc/[0-9]*/fd -lname "socket:\[$inode\]" 2>/dev/null | head -n 1 | cut -d/ -f3)
    if [ -n "$pid" ]; then echo "$(cat "/proc/$pid/comm" 2>/dev/null || echo unknown) $pid"
    else echo "? ?"; fi
}

# -- packages and the Docker engine -------------------------------------------------

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

install_packages() {
    missing=""
    for package in git openssh-server nftables python3 python3-venv ca-certificates iproute2; do
        installed "$package" || missing="$missing $package"
    done
    if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1; then
        missing="$missing docker.io"
    fi
    [ -n "$missing" ] || return 0
    say "Installing$missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
}

start_docker() {
    if docker info >/dev/null 2>&1; then
        note "Using the Docker engine already running ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
        return 0
    fi
    say "Starting the Docker engine"
    if has_systemd; then systemctl enable --now docker >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/docker ]; then /etc/init.d/docker start >/dev/null 2>&1 || true
    fi
    sleep 1
    docker info >/dev/null 2>&1 || (setsid dockerd >>/var/log/dockerd.log 2>&1 &)
    i=0
    until docker info >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -le 60 ] || die "the Docker engine did not start (see /var/log/dockerd.log)"
        sleep 1
    done
}

# -- Berth itself ---------------------------------------------------------------------

resolve_source() {  # before anything changes: what to install, downloaded to WORK
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    EXPECTED_SHA256=$SHA256 WHOSE="expected"
    if [ -z "$SOURCE" ]; then
        here=""
        if [ -f "$0" ]; then here=$(cd "$(dirname "$0")" 2>/dev/null && pwd) || here=""; fi
        if [ -n "$RELEASE_URL" ]; then
            SOURCE=$RELEASE_URL EXPECTED_SHA256=$RELEASE_SHA256 WHOSE="release's"
            [ -n "$EXPECTED_SHA256" ] || die "this install.sh pins $RELEASE_URL without its SHA-256"
        elif [ -n "$here" ] && [ -f "$here/pyproject.toml" ] && [ -d "$here/agent" ]; then
            SOURCE=$here
        else
            die "no Berth to install: run from a checkout, or set --source (a checkout, wheel or tarball)"
        fi
    fi
    case $SOURCE in
        file://*) SOURCE=${SOURCE#file://} ;;
        http://*|https://*) download ;;
    esac
    if [ -d "$SOURCE" ]; then
        [ -f "$SOURCE/pyproject.toml" ] || die "$SOURCE is not a checkout of Berth"
    elif [ -f "$SOURCE" ]; then
        case $SOURCE in
            *.whl|*.tar.gz|*.tgz) ;;
            *) die "$SOURCE: expected a checkout, a .whl or a .tar.gz" ;;
        esac
    else
        die "$SOURCE does not exist"
    fi
    if [ -n "$EXPECTED_SHA256" ]; then
        [ -f "$SOURCE" ] || die "--sha256 checks a wheel or a tarball, not $SOURCE"
        verify_sha256 "$SOURCE" "$EXPECTED_SHA256"
    fi
}

download() {  # SOURCE, an http(s) URL, into WORK; SOURCE becomes the file
    command -v curl >/dev/null 2>&1 || die "needs curl to download $SOURCE (apt-get install curl)"
    URL=$SOURCE
    name=$(basename "${SOURCE%%\?*}")
    mkdir "$WORK/download"
    # A stalled server ends the download (and the install) instead of hanging it.
    if ! said=$(curl -fsSL --connect-timeout 20 --max-time 600 -o "$WORK/download/$name" \
            "$SOURCE" 2>&1); then
        die "cannot download $SOURCE: $(printf '%s' "$said" | tail -n 1 | sed 's/^curl: ([0-9]*) //')"
    fi
    SOURCE=$WORK/download/$name
}

verify_sha256() {  # FILE EXPECTED: a file that does not match is never installed
    actual=$(sha256sum "$1" | cut -d' ' -f1)
    [ "$actual" = "$2" ] || die "${URL:-$1} has SHA-256 $actual, not the $WHOSE $2: refusing to install it"
}

build_wheel() {  # the wheel to install, in WORK
    case $SOURCE in
        *.whl) cp "$SOURCE" "$WORK/"; return 0 ;;
        *.tar.gz|*.tgz) mkdir "$WORK/src"
            tar -xzf "$SOURCE" -C "$WORK/src" --strip-components=1 || die "$SOURCE is not a tarball of Berth" ;;
        *) cp -a "$SOURCE" "$WORK/src" ;;
    esac
    rm -rf "$WORK/src/.git" "$WORK/src/build" "$WORK/src/dist"
    "$PREFIX/venv/bin/pip" wheel -q --no-deps -w "$WORK" "$WORK/src" >/dev/null 2>&1 \
        || die "building Berth's wheel from $SOURCE failed"
}

install_berth() {
    say "Installing Berth into $PREFIX"
    mkdir -p "$PREFIX"
    [ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
    pip=$PREFIX/venv/bin/pip
    "$pip" install -q --upgrade pip >/dev/null 2>&1 || die "cannot upgrade pip in $PREFIX/venv"
    build_wheel
    wheel=$(ls "$WORK"/berth-*.whl)
    # A normal (not editable) package: it carries hooks/ and buildpacks/ inside.
    "$pip" install -q "$wheel" >/dev/null 2>"$WORK/pip.log" \
        || die "pip could not install Berth: $(tail -n 1 "$WORK/pip.log")"
    "$pip" install -q --force-reinstall --no-deps "$wheel" >/dev/null 2>&1 \
        || die "pip could not install Berth's wheel"
    rm -rf "$WORK" "$PREFIX/src"
    chmod -R a+rX "$PREFIX"
    mkdir -p "$BIN_DIR"
    ln -sf "$PREFIX/venv/bin/berth" "$BERTH"
}

create_user() {
    if ! id berth >/dev/null 2>&1; then
        say "Creating the berth user"
        useradd --system --create-home --home-dir /home/berth --shell /bin/sh berth
    fi
    usermod -p '*' berth  # key logins only; a locked account would be refused by sshd
}

write_config() {
    if [ -f "$CONFIG" ]; then  # an earlier install's: kept, but for the flags given now
        apply_setting --domain deploy domain "$DOMAIN"
        apply_setting --email acme email "$EMAIL"
        [ -n "$DOMAIN" ] || DOMAIN=$(config_setting deploy domain | sed -n 's/^value [0-9]* //p')
        return 0
    fi
    say "Writing $CONFIG"
    mkdir -p "$(dirname "$CONFIG")"
    # The firewall starts off: the installer shows what it will close, then turns it on.
    cat >"$CONFIG" <<EOF
# Berth's configuration; see the README for every setting.
[ssh]
command = "$SSH_COMMAND"

[deploy]
domain = "$DOMAIN"

[acme]
email = "$EMAIL"

[firewall]
# Only SSH, 80 and 443 from outside, Docker's published ports included.
enabled = false  # install.sh turns this on
EOF
    chmod 0644 "$CONFIG"
}

config_setting() {  # SECTION KEY: where KEY is in [SECTION] of CONFIG, as "value LINE VALUE"
    # (a plain KEY = "VALUE" line), "other LINE" (a value written otherwise), "absent LINE"
    # (no KEY; LINE is the table's header) or "absent 0" (no such table).
    awk -v section="$1" -v key="$2" '
        /^[ \t]*\[/ { name = $0; sub(/^[ \t]*\[[ \t]*/, "", name); sub(/[ \t]*\].*$/, "", name)
                     inside = (name == section); if (inside) header = NR; next }
        inside && $0 ~ ("^[ \t]*" key "[ \t]*=") {
            value = $0; sub(/^[^=]*=[ \t]*/, "", value); done = 1
            if (value !~ /^"[^"\\]*"[ \t]*(#.*)?$/) { print "other " NR; exit }
            sub(/^"/, "", value); sub(/".*$/, "", value); print "value " NR " " value; exit
        }
        END { if (!done) print "absent " (header + 0) }' "$CONFIG"
}

check_setting() {  # FLAG SECTION KEY VALUE: before anything changes, refuse what apply_setting cannot do
    [ -n "$4" ] && [ -f "$CONFIG" ] || return 0
    case $(config_setting "$2" "$3") in
        other\ *) die "$1 $4: [$2] $3 in $CONFIG is not a plain \"...\" string; change it there yourself" ;;
    esac
}

apply_setting() {  # FLAG SECTION KEY VALUE: KEY in [SECTION] of CONFIG becomes VALUE, the rest kept byte for byte
    [ -n "$4" ] || return 0
    found=$(config_setting "$2" "$3")
    line=${found#* }; line=${line%% *}
    case $found in
        value\ *) was=${found#value "$line" }
            [ "$was" != "$4" ] || return 0
            sed -i "${line}s/\"[^\"]*\"/\"$4\"/" "$CONFIG" ;;
        absent\ 0) was=""
            if [ -n "$(tail -c 1 "$CONFIG")" ]; then echo >>"$CONFIG"; fi
            printf '\n[%s]\n%s = "%s"\n' "$2" "$3" "$4" >>"$CONFIG" ;;
        absent\ *) was=""; sed -i "${line}a $3 = \"$4\"" "$CONFIG" ;;
        *) check_setting "$@" ;;
    esac
    say "Changed [$2] $3 in $CONFIG from \"$was\" to \"$4\" ($1; the rest of the file is kept)"
}

# -- the agent as a service ----------------------------------------------------------

start_agent() {
    if has_systemd; then systemd_service
    else supervisor_service; fi
    i=0
    until berth apps >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 120 ]; then
            tail -n 20 /var/log/berth/agent.log /var/log/berth/agent.stderr >&2 2>/dev/null || true
            die "the agent did not start (see $(agent_logs))"
        fi
        sleep 1
    done
}

agent_logs() {
    if has_systemd; then echo "journalctl -u berth"; else echo "/var/log/berth/agent.log"; fi
}

systemd_service() {
    say "Starting berth.service (ports 80 and 443 held open by berth.socket)"
    # An older install's socket listens on IPv4 only: reopened once below, on both.
    ipv4_only=0
    ! grep -q '^ListenStream=0\.0\.0\.0:' /etc/systemd/system/berth.socket 2>/dev/null \
        || ipv4_only=1
    # The sockets outlive the agent: a restart or an upgrade refuses no connection.
    cat >/etc/systemd/system/berth.socket <<EOF
[Unit]
Description=Berth's proxy ports, kept open while the agent restarts

[Socket]
# A bare port: [::] for IPv6 and IPv4 alike (one dual-stack socket each), or 0.0.0.0
# where the host has no IPv6.
ListenStream=80
ListenStream=443
BindIPv6Only=both
Backlog=4096

[Install]
WantedBy=sockets.target
EOF
    cat >/etc/systemd/system/berth.service <<EOF
[Unit]
Description=Berth agent (proxy, deploys, certificates)
After=network-online.target docker.service berth.socket
Wants=network-online.target docker.service
Requires=berth.socket

[Service]
Environment=BERTH_CONFIG=$CONFIG
ExecStart=$BERTH agent
ExecReload=/bin/kill -HUP \$MAINPID
Restart=always
RestartSec=2
KillSignal=SIGTERM
# The agent's stop ends within 80 s (agent/shutdown.py's STOP_BUDGET): never SIGKILLed.
TimeoutStopSec=90
UMask=0027

[Install]
WantedBy=multi-user.target
EOF
    systemctl daemon-reload
    if ! systemctl is-active --quiet berth.socket; then
        systemctl stop berth.service  # an agent that bound 80 and 443 itself (an older install)
    fi
    systemctl enable berth.socket berth.service >/dev/null 2>&1
    [ "$ipv4_only" = 0 ] || systemctl restart berth.socket
    systemctl start berth.socket
    systemctl restart berth.service
}

supervisor_script() {  # the respawning loop that runs the agent without systemd
    cat <<EOF
#!/bin/sh
# Keeps \`berth agent\` running where there is no systemd. The agent rotates its own
# log; what it prints before logging starts (or as it dies) goes to agent.stderr,
# rotated here between runs.
umask 0027
mkdir -p $AGENT_LOGS
echo \$\$ >$SUPERVISE_PID
restarts=0
echo 0 >$RESTARTS_FILE
while true; do
    if [ -f $AGENT_LOGS/agent.stderr ] && [ "\$(wc -c <$AGENT_LOGS/agent.stderr)" -gt 10485760 ]; then
        mv -f $AGENT_LOGS/agent.stderr $AGENT_LOGS/agent.stderr.1
    fi
    # SIGHUP to this pid restarts the agent in place, its ports kept open (an upgrade).
    BERTH_CONFIG=$CONFIG $BERTH agent --log-file $AGENT_LOGS/agent.log 2>>$AGENT_LOGS/agent.stderr &
    echo \$! >$AGENT_PID
    wait \$!
    restarts=\$((restarts + 1))
    echo "\$restarts" >$RESTARTS_FILE  # read by berth doctor
    sleep 2
done
EOF
}

supervisor_stop() {  # shell text: stop the respawning loop, then wait for its agent to end
    cat <<EOF
agent=\$(cat $AGENT_PID 2>/dev/null) || agent=""
running() { [ -n "\$agent" ] && { tr '\\0' ' ' <"/proc/\$agent/cmdline"; } 2>/dev/null | grep -q 'berth.* agent'; }
[ ! -f $SUPERVISE_PID ] || kill -TERM -"\$(cat $SUPERVISE_PID)" 2>/dev/null || true
! running || kill -TERM "\$agent" 2>/dev/null || true  # also an agent whose loop is gone
# The agent drains for at most 80 s (its stop budget): a new one could not bind before.
i=0
while running; do
    i=\$((i + 1))
    if [ \$i -gt 900 ]; then kill -KILL "\$agent" 2>/dev/null || true; break; fi
    sleep 0.1
done
rm -f $SUPERVISE_PID $RESTARTS_FILE $AGENT_PID
EOF
}

agent_init_script() {  # /etc/init.d/berth: the respawning loop as a SysV service
    sysv_script berth "Berth agent" "\$network docker" "(setsid $SUPERVISOR >/dev/null 2>&1 &)" \
        "$(supervisor_stop)" "kill -HUP \$(cat $AGENT_PID)"
}

supervisor_service() {
    supervisor_script >"$SUPERVISOR.new"
    chmod 0755 "$SUPERVISOR.new"
    mv -f "$SUPERVISOR.new" "$SUPERVISOR"  # a running loop keeps reading its own copy
    if has_sysv; then
        agent_init_script >/etc/init.d/berth
        chmod 0755 /etc/init.d/berth
        update-rc.d berth defaults >/dev/null 2>&1
    else
        BOOT_NOTE="No systemd and no SysV init here: the agent will NOT come back after a reboot. After each boot, start it as root with: setsid $SUPERVISOR >/dev/null 2>&1 &"
    fi
    if pid=$(supervised_agent); then
        say "Restarting the agent in place (ports 80 and 443 stay open)"
        restart_in_place "$pid"
        return 0
    fi
    stop_supervisor
    if has_sysv; then
        say "Starting the agent (SysV init script /etc/init.d/berth, logs in /var/log/berth/agent.log)"
        /etc/init.d/berth start
    else
        say "Starting the agent (a respawning loop, logs in /var/log/berth/agent.log)"
        (setsid "$SUPERVISOR" >/dev/null 2>&1 &)
    fi
}

supervised_agent() {  # the pid of the agent the respawning loop runs, if it runs
    [ -f "$SUPERVISE_PID" ] && kill -0 "$(cat "$SUPERVISE_PID")" 2>/dev/null \
        || return 1
    pid=$(cat "$AGENT_PID" 2>/dev/null) || return 1
    { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q 'berth.* agent' || return 1
    echo "$pid"
}

restart_in_place() {  # SIGHUP: the agent execs the installed code, keeping its sockets
    kill -HUP "$1"
    i=0
    while berth apps >/dev/null 2>&1; do  # the old agent answers until it stops
        i=$((i + 1)); [ $i -le 300 ] || break
        sleep 0.2
    done
}

stop_supervisor() { sh -c "$(supervisor_stop)"; }

sysv_script() {  # NAME DESCRIPTION REQUIRED-START START-COMMAND STOP-COMMAND [RELOAD-COMMAND]
    cat <<EOF
#!/bin/sh
### BEGIN INIT INFO
# Provides:          $1
# Required-Start:    \$local_fs $3
# Required-Stop:     \$local_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: $2
### END INIT INFO
case "\$1" in
    start) $4 ;;
    stop) $5 ;;
    restart) "\$0" stop; "\$0" start ;;  # stop returns once the service has ended
    reload) ${6:-\$0 restart} ;;
    *) echo "usage: \$0 start|stop|restart|reload"; exit 1 ;;
esac
EOF
}

# -- the firewall ---------------------------------------------------------------------

enable_firewall() {
    boot_loader  # loads what the agent saved at its last firewall change: nothing when off
    if [ "$NO_FIREWALL" = 1 ]; then
        sed -i 's/^enabled = false  # install.sh turns this on$/enabled = false/' "$CONFIG"
        note "Firewall left off (--no-firewall); turn it on later with: berth firewall:apply"
        return 0
    fi
    if grep -q '^enabled = false  # install.sh turns this on$' "$CONFIG"; then
        say "The firewall, before it is turned on:"
        berth firewall | sed 's/^/       /'
        # The agent saves what it applies for the next boot ([firewall] boot_ruleset).
        berth firewall:apply >/dev/null || die "the firewall could not be applied (berth firewall:apply)"
        sed -i 's/^enabled = false  # install.sh turns this on$/enabled = true/' "$CONFIG"
        say "Firewall on: only SSH, 80 and 443 are reachable from outside"
    fi
}

boot_ruleset() {  # where the agent saves the ruleset loaded at boot ([firewall] boot_ruleset)
    config_value boot_ruleset /etc/berth/firewall.nft
}

firewall_boot_loader() {  # RULESET: the script the boot unit runs; without the file, nothing
    cat <<EOF
#!/bin/sh
# Loads Berth's firewall table before the network comes up. The agent saves it at each
# firewall change and removes it when the firewall is off: no file, nothing to load.
PATH=/usr/sbin:/sbin:/usr/bin:/bin
[ -f "$1" ] || exit 0
exec nft -f "$1"
EOF
}

boot_loader() {
    mkdir -p "$(dirname "$FIREWALL_BOOT")"
    firewall_boot_loader "$(boot_ruleset)" >"$FIREWALL_BOOT.new"
    chmod 0755 "$FIREWALL_BOOT.new"
    mv -f "$FIREWALL_BOOT.new" "$FIREWALL_BOOT"
    if has_systemd; then
        cat >/etc/systemd/system/berth-firewall.service <<EOF
[Unit]
Description=Berth's firewall table, loaded before the network comes up
DefaultDependencies=no
Before=network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
ExecStart=$FIREWALL_BOOT
RemainAfterExit=yes

[Install]
WantedBy=sysinit.target
EOF
        systemctl daemon-reload
        systemctl enable berth-firewall.service >/dev/null 2>&1
    elif has_sysv; then
        sysv_script berth-firewall "Berth's firewall table" "" "$FIREWALL_BOOT" "true" \
            >/etc/init.d/berth-firewall
        chmod 0755 /etc/init.d/berth-firewall
        # shellcheck disable=SC2016
        sed -i 's/^# Default-Start:     2 3 4 5$/# Default-Start:     S\n# X-Start-Before:    $network networking ssh/' /etc/init.d/berth-firewall
        sed -i 's/^# Default-Stop:      0 1 6$/# Default-Stop:/' /etc/init.d/berth-firewall
        update-rc.d berth-firewall defaults >/dev/null 2>&1
    fi
}

# -- keys -----------------------------------------------------------------------------

public_keys() {  # the keys of authorized_keys-style input, options before them dropped
    awk '!/^[[:space:]]*(#|$)/ {
        for (i = 1; i <= NF; i++) if ($i ~ /^(ssh-|ecdsa-|sk-)/) {
            line = $i; for (j = i + 1; j <= NF; j++) line = line " " $j; print line; break
        }
    }'
}

candidate_keys() {
    if [ -n "$SSH_KEY" ]; then printf '%s\n' "$SSH_KEY"; fi
    if [ -n "$SSH_KEY_FILE" ]; then cat "$SSH_KEY_FILE"; fi
    if [ -z "$SSH_KEY$SSH_KEY_FILE" ]; then
        authorized_keys root
        if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then authorized_keys "$SUDO_USER"; fi
    fi
}

authorized_keys() {  # the authorized_keys of user $1, if there are any
    home=$(getent passwd "$1" | cut -d: -f6)
    [ -z "$home" ] || cat "$home/.ssh/authorized_keys" 2>/dev/null || true
}

fingerprint() { ssh-keygen -lf - 2>/dev/null | awk '{print $2}'; }

add_keys() {
    [ "${BERTH_NO_KEYS:-0}" != 1 ] || return 0
    [ -z "$SSH_KEY_FILE" ] || [ -r "$SSH_KEY_FILE" ] || die "--ssh-key-file $SSH_KEY_FILE: cannot read it"
    NO_KEY=1
    for key in $(candidate_keys | public_keys | awk '{print $1 "|" $2}' | sort -u); do
        NO_KEY=0
        line="${key%%|*} ${key#*|}"
        known=$(berth keys --json) || die "cannot list the keys (berth keys)"
        print=$(printf '%s\n' "$line" | fingerprint)
        [ -n "$print" ] || die "not an SSH public key: $(printf '%s' "$line" | cut -c1-40)..."
        case $known in *"$print"*) continue ;; esac  # already allowed (an upgrade)
        name="admin"; n=1
        while case $known in *"\"$name\""*) true ;; *) false ;; esac; do
            n=$((n + 1)); name="admin-$n"
        done
        printf '%s\n' "$line" | berth keys:add "$name" >/dev/null \
            || die "the SSH key $print was refused by keys:add"
        say "Key $name ($print) may push"
    done
}

# -- what to do next ------------------------------------------------------------------

public_address() {  # the address of the default route (no lookup leaves the machine)
    ip "-$1" route get "$2" 2>/dev/null | sed -n 's/.* src \([0-9a-f.:]*\).*/\1/p' | head -n 1
}

global_ipv6() {  # $1 when it is a global unicast IPv6 address (2000::/3), else nothing
    case $1 in [23][0-9a-f][0-9a-f][0-9a-f]:*) echo "$1" ;; esac
}

next_steps() {
    address=$(public_address 4 1.1.1.1)
    # AAAA records only for an address the internet reaches (not fd00::/8, fe80::/10).
    address6=$(global_ipv6 "$(public_address 6 2606:4700:4700::1111)")
    host=${DOMAIN:-${address:-your-server}}
    say "Berth is installed."
    if [ -n "$DOMAIN" ]; then
        note "DNS: create these records (apps answer on APP.$DOMAIN):"
        note "  *.$DOMAIN  A  ${address:-<public IPv4 of this server>}"
        note "  $DOMAIN  A  ${address:-<public IPv4 of this server>}"
        if [ -n "$address6" ]; then
            note "  *.$DOMAIN  AAAA  $address6"
            note "  $DOMAIN  AAAA  $address6"
        fi
    else
        note "No --domain: apps get no domain until you set deploy.domain in $CONFIG"
    fi
    if [ "${NO_KEY:-0}" = 1 ]; then
        note "No SSH key may push yet. Add yours (from your machine):"
        note "  ssh root@${address:-your-server} berth keys:add laptop < ~/.ssh/id_ed25519.pub"
    fi
    [ -z "${BOOT_NOTE:-}" ] || note "$BOOT_NOTE"
    note "From your machine, in your app's repository:"
    note "  git remote add deploy berth@$host:myapp"
    note "  git push deploy main      (main or master: either deploys)"
}

# -- uninstall ------------------------------------------------------------------------

log_dirs() {  # where Berth logs: the agent's own log, and [paths] log_dir when elsewhere
    log_dir=$(config_value log_dir /var/log/berth)
    if [ "$log_dir" = /var/log/berth ]; then echo /var/log/berth; else echo "/var/log/berth $log_dir"; fi
}

purge() {  # DATA LOG_DIR: Berth's containers, networks, images, data, configuration and logs
    say "Purging apps, data, configuration and logs"
    if docker info >/dev/null 2>&1; then
        ids=$(docker ps -aq --filter label=berth.managed)
        # shellcheck disable=SC2086
        [ -z "$ids" ] || docker rm -f $ids >/dev/null || note "Could not remove containers: $ids"
        networks=$(docker network ls -q --filter label=berth.managed)
        # shellcheck disable=SC2086
        [ -z "$networks" ] || docker network rm $networks >/dev/null \
            || note "Could not remove networks: $networks"
        images=$(docker images -q --filter 'reference=berth/*' | sort -u)
        # shellcheck disable=SC2086
        [ -z "$images" ] || docker rmi -f $images >/dev/null || note "Could not remove images: $images"
    fi
    rm -rf "$1" "$CONFIG"
    remove_logs /var/log/berth
    [ "$2" = /var/log/berth ] || remove_logs "$2"
    rmdir "$(dirname "$CONFIG")" 2>/dev/null || true
    ! id berth >/dev/null 2>&1 || userdel -r berth >/dev/null 2>&1 || true
}

remove_logs() {  # DIR: Berth's log files in DIR, then DIR once empty; anything else stays
    [ -d "$1" ] || return 0
    rm -f "$1/agent.log" "$1/agent.stderr" "$1/agent.stderr.1" "$1/access.log" \
        "$1"/agent.log.[0-9]* "$1"/access.log.[0-9]* "$1"/apps/*.jsonl "$1"/apps/*.jsonl.1
    [ ! -d "$1/apps" ] || rmdir "$1/apps" 2>/dev/null || true
    rmdir "$1" 2>/dev/null || note "Kept $1: it holds files that are not Berth's logs"
}

refuse_to_purge() {  # DATA LOG_DIR: before anything changes, never rm -rf what is not Berth's
    for path in "$1" "$2"; do
        case $path in
            /|/*/|*/.|*/./*|*/..|*/../*|[!/]*|/bin|/boot|/dev|/etc|/home|/lib|/opt|/proc|/root|/run|/sbin|/srv|/sys|/tmp|/usr|/usr/*bin|/var|/var/lib|/var/log)
                die "--purge: refusing to remove $path (from $CONFIG); remove Berth's files there yourself" ;;
        esac
    done
    # The agent keeps its state in data_dir/berth.db: a directory without it is not Berth's.
    if [ -e "$1" ] && [ ! -f "$1/berth.db" ] && [ -n "$(ls -A "$1" 2>/dev/null)" ]; then
        die "--purge: refusing to remove $1 (from $CONFIG): it holds no berth.db, so it is not Berth's data_dir; remove Berth's files there yourself"
    fi
}

remove_service() {
    if has_systemd; then
        systemctl disable --now berth.service berth.socket berth-firewall.service >/dev/null 2>&1 || true
        rm -f /etc/systemd/system/berth.service /etc/systemd/system/berth.socket \
            /etc/systemd/system/berth-firewall.service
        systemctl daemon-reload
    fi
    for name in berth berth-firewall; do
        if [ -f "/etc/init.d/$name" ]; then
            "/etc/init.d/$name" stop >/dev/null 2>&1 || true
            update-rc.d -f "$name" remove >/dev/null 2>&1 || true
            rm -f "/etc/init.d/$name"
        fi
    done
    stop_supervisor
    rm -f "$SUPERVISOR"
}

uninstall() {
    [ "$(id -u)" = 0 ] || die "run as root (sudo sh install.sh --uninstall)"
    data=$(config_value data_dir /var/lib/berth)
    logs=$(log_dirs)
    [ "$PURGE" = 0 ] || refuse_to_purge "$data" "$(config_value log_dir /var/log/berth)"
    say "Removing Berth's service"
    remove_service
    say "Removing the firewall table, the code and the git hooks"
    nft delete table inet berth 2>/dev/null || true
    rm -f "$(boot_ruleset)" "$FIREWALL_BOOT" "$BERTH"
    rm -rf "$PREFIX"
    rm -f "$data"/repos/*.git/hooks/pre-receive
    if [ "$PURGE" = 1 ]; then
        purge "$data" "$(config_value log_dir /var/log/berth)"
    else
        note "Kept: $data (repositories, releases), $CONFIG and the logs ($logs);"
        note "apps keep running. --uninstall --purge removes them too."
    fi
    say "Berth is uninstalled."
}

main() {
    if [ "$ACTION" = uninstall ]; then uninstall; exit 0; fi
    preflight
    check_setting --domain deploy domain "$DOMAIN"
    check_setting --email acme email "$EMAIL"
    resolve_source
    install_packages
    start_docker
    create_user
    install_berth
    write_config
    if [ "$NO_START" != 1 ]; then
        start_agent
        enable_firewall
        add_keys
    fi
    next_steps
}

read_settings
parse_args "$@"
main
