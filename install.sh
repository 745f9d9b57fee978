#!/bin/sh
# Berth installer: sets Berth up on a Debian or Ubuntu server and starts the agent.
#
#   sudo ./install.sh                          (from a checkout of Berth)
#   sudo BERTH_DOMAIN=apps.example.com BERTH_EMAIL=you@example.com ./install.sh
#
# What it does, each step skipped when already done:
#   1. installs docker.io, git, openssh-server, nftables, python3-venv from apt;
#   2. starts the Docker engine (systemd if it runs, otherwise dockerd in the background);
#   3. creates the `berth` system user (pushes and verbs over SSH log in as it);
#   4. builds a wheel of Berth and installs it into /opt/berth/venv, links
#      /usr/local/bin/berth;
#   5. writes /etc/berth/berth.toml (only if missing) with BERTH_DOMAIN and BERTH_EMAIL;
#   6. runs `berth agent` under systemd, or under a respawning loop where there is none;
#   7. lets root's SSH keys push (keys:add admin), unless BERTH_NO_KEYS=1.
# Environment: BERTH_DOMAIN, BERTH_EMAIL, BERTH_PREFIX (/opt/berth), BERTH_BIN_DIR
# (/usr/local/bin), BERTH_CONFIG (/etc/berth/berth.toml), BERTH_NO_START=1 (install only).
set -eu

PREFIX=${BERTH_PREFIX:-/opt/berth}
BIN_DIR=${BERTH_BIN_DIR:-/usr/local/bin}
SOURCE=$(cd "$(dirname "$0")" && pwd)
CONFIG=${BERTH_CONFIG:-/etc/berth/berth.toml}
BERTH="$BIN_DIR/berth"
if [ "$CONFIG" = /etc/berth/berth.toml ]; then
    SSH_COMMAND="$BERTH"
else
    SSH_COMMAND="env BERTH_CONFIG=$CONFIG $BERTH"
fi

say() { printf -- '-----> %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (sudo ./install.sh)"
[ -f "$SOURCE/pyproject.toml" ] && [ -d "$SOURCE/agent" ] || die "run from a checkout of Berth"
command -v apt-get >/dev/null 2>&1 || die "needs a Debian or Ubuntu system (apt-get)"

missing=""
for package in docker.io git openssh-server nftables python3 python3-venv ca-certificates; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $package"
done
if [ -n "$missing" ]; then
    say "Installing$missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
fi

has_systemd() { [ -d /run/systemd/system ]; }

if ! docker info >/dev/null 2>&1; then
    say "Starting the Docker engine"
    if has_systemd; then
        systemctl enable --now docker >/dev/null
    else
        (setsid dockerd >>/var/log/dockerd.log 2>&1 &)
    fi
    i=0
    until docker info >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -gt 60 ] && die "the Docker engine did not start (see /var/log/dockerd.log)"
        sleep 1
    done
fi

if ! id berth >/dev/null 2>&1; then
    say "Creating the berth user"
    useradd --system --create-home --home-dir /home/berth --shell /bin/sh berth
fi
usermod -p '*' berth  # key logins only; a locked account would be refused by sshd

say "Installing Berth into $PREFIX"
mkdir -p "$PREFIX"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q --upgrade pip >/dev/null
# A wheel built from the source, installed as a normal package: it carries hooks/ and
# buildpacks/ inside, and nothing of it depends on the source staying where it is.
build=$(mktemp -d)
cp -a "$SOURCE" "$build/src"
rm -rf "$build/src/.git" "$build/src/build" "$build/src/dist"
"$PREFIX/venv/bin/pip" wheel -q --no-deps -w "$build/dist" "$build/src" >/dev/null \
    || die "building Berth's wheel failed"
wheel=$(ls "$build"/dist/berth-*.whl)
"$PREFIX/venv/bin/pip" install -q "$wheel" >/dev/null
"$PREFIX/venv/bin/pip" install -q --force-reinstall --no-deps "$wheel" >/dev/null
rm -rf "$build" "$PREFIX/src"
chmod -R a+rX "$PREFIX"
mkdir -p "$BIN_DIR"
ln -sf "$PREFIX/venv/bin/berth" "$BERTH"

if [ ! -f "$CONFIG" ]; then
    say "Writing $CONFIG"
    mkdir -p "$(dirname "$CONFIG")"
    cat >"$CONFIG" <<EOF
# Berth's configuration; see the README for every setting.
[ssh]
command = "$SSH_COMMAND"

[deploy]
domain = "${BERTH_DOMAIN:-}"

[acme]
email = "${BERTH_EMAIL:-}"

[firewall]
# Only SSH, 80 and 443 from outside, Docker's published ports included.
enabled = true
EOF
    chmod 0644 "$CONFIG"
fi

if [ "${BERTH_NO_START:-0}" != 1 ]; then
    if has_systemd; then
        say "Starting berth.service"
        cat >/etc/systemd/system/berth.service <<EOF
[Unit]
Description=Berth agent (proxy, deploys, certificates)
After=network-online.target docker.service
Wants=network-online.target docker.service

[Service]
Environment=BERTH_CONFIG=$CONFIG
ExecStart=$BERTH agent
UMask=0027
Restart=always
RestartSec=2
KillSignal=SIGTERM
TimeoutStopSec=90

[Install]
WantedBy=multi-user.target
EOF
        systemctl daemon-reload
        systemctl enable --now berth.service >/dev/null
        systemctl restart berth.service
    else
        say "Starting the agent (no systemd: a respawning loop, logs in /var/log/berth/agent.log)"
        cat >/usr/local/sbin/berth-supervise <<EOF
#!/bin/sh
# Keeps \`berth agent\` running where there is no systemd. The agent rotates its own
# log; what it prints before logging starts (or as it dies) goes to agent.stderr,
# rotated here between runs.
mkdir -p /var/log/berth
while true; do
    if [ -f /var/log/berth/agent.stderr ] && [ "\$(wc -c </var/log/berth/agent.stderr)" -gt 10485760 ]; then
        mv -f /var/log/berth/agent.stderr /var/log/berth/agent.stderr.1
    fi
    BERTH_CONFIG=$CONFIG $BERTH agent --log-file /var/log/berth/agent.log 2>>/var/log/berth/agent.stderr
    sleep 2
done
EOF
        chmod 0755 /usr/local/sbin/berth-supervise
        pkill -f berth-supervise 2>/dev/null || true
        pkill -f "berth agent" 2>/dev/null || true
        (setsid /usr/local/sbin/berth-supervise >/dev/null 2>&1 &)
        if command -v crontab >/dev/null 2>&1; then
            (crontab -l 2>/dev/null | grep -v berth-supervise; echo "@reboot /usr/local/sbin/berth-supervise") | crontab -
        fi
    fi
    i=0
    until BERTH_CONFIG=$CONFIG "$BERTH" apps >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -gt 60 ] && die "the agent did not start (see journalctl -u berth or /var/log/berth/agent.log)"
        sleep 1
    done
    if [ "${BERTH_NO_KEYS:-0}" != 1 ] && [ -f /root/.ssh/authorized_keys ] \
            && ! BERTH_CONFIG=$CONFIG "$BERTH" keys | grep -q '^admin '; then
        n=0
        grep -E '^(ssh-|ecdsa-|sk-)' /root/.ssh/authorized_keys | while read -r line; do
            n=$((n + 1)); name=admin; [ $n -gt 1 ] && name="admin-$n"
            printf '%s\n' "$line" | BERTH_CONFIG=$CONFIG "$BERTH" keys:add "$name" >/dev/null \
                && say "Key $name may push"
        done
    fi
fi

host=$(hostname -f 2>/dev/null || hostname)
say "Berth is installed. From your machine:"
echo "       git remote add deploy berth@$host:myapp"
echo "       git push deploy main"
