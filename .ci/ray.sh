#!/usr/bin/env bash
# Starts a throw-away single-node Ray cluster on loopback, with token authentication, for the
# Ray executor's tests, and prints three lines: the dashboard's address, the token file, and
# a script that starts the same head again (an outage test stops it and brings it back).
#   bash .ci/ray.sh PYTHON_BIN_DIR      start (ray must be installed there: rankwright[ray])
#   bash .ci/ray.sh stop PYTHON_BIN_DIR stop it
set -euo pipefail
if [ "${1:-}" = "stop" ]; then
  "$2/ray" stop --force >/dev/null 2>&1 || true
  exit 0
fi
bin=$1
port=${RANKWRIGHT_RAY_PORT:-26379}
dash=$((port + 1000))
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || (exec 3<>"/dev/tcp/127.0.0.1/$dash") 2>/dev/null; do
  port=$((port + 7)); dash=$((port + 1000))
done
dir=$(mktemp -d /tmp/rankwright-ray.XXXXXX)
python3 -c "import secrets; print(secrets.token_hex(32))" > "$dir/token"
chmod 600 "$dir/token"
cat > "$dir/start.sh" <<EOF
#!/usr/bin/env bash
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$dir/token" RAY_USAGE_STATS_ENABLED=0
exec "$bin/ray" start --head --node-ip-address=127.0.0.1 --port="$port" --dashboard-host=127.0.0.1 \\
  --dashboard-port="$dash" --num-cpus="$(nproc)" --include-dashboard=true --disable-usage-stats \\
  --temp-dir="$dir/tmp"
EOF
bash "$dir/start.sh" >"$dir/start.log" 2>&1 || { cat "$dir/start.log" >&2; exit 1; }
echo "http://127.0.0.1:$dash"
echo "$dir/token"
echo "$dir/start.sh"
