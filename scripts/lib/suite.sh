# Sourced by scripts/test and scripts/coverage: installing what the suite needs on a fresh Debian
# machine with Rust, and which tests are the load tests. Defines functions and one array; runs
# nothing by itself.

say() { printf '==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "root (or sudo) is needed to run: $*" >&2
    exit 1
  fi
}

have_postgres_server() {
  local bin
  for bin in /usr/lib/postgresql/*/bin; do
    if [ -x "$bin/initdb" ] && [ -x "$bin/postgres" ]; then return 0; fi
  done
  return 1
}

have_debian_package() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}

# Appends to the caller's array `missing` the Debian packages the suite needs that are not there.
add_missing_suite_packages() {
  have_postgres_server || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  # The tests start their own MariaDB servers from these binaries (tests/it/harness/mariadb.rs).
  if ! { [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null; } \
    || ! command -v mariadb-install-db >/dev/null || ! command -v mariadb >/dev/null; then
    missing+=(mariadb-server mariadb-client)
  fi
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  [ -x /usr/bin/chromium ] || missing+=(chromium chromium-driver)
}

# Installs the Debian packages given as arguments with apt-get (nothing when there are none).
apt_install() {
  if [ $# -gt 0 ]; then
    say "installing Debian packages: $*"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "$@"
  fi
}

warn_if_old_node() {
  local node_major
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$node_major" -lt 20 ]; then
    echo "warning: Node $(node --version) is older than the Node 20 the test clients are written for" >&2
  fi
}

# Off-the-shelf clients for the contract tests; playwright-core for the browser tests.
install_node_clients() {
  local dir stamp
  for dir in tests/contract tests/browser; do
    stamp=$dir/node_modules/.package-lock.json
    if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ] \
      || [ "$dir/package.json" -nt "$stamp" ]; then
      say "npm ci in $dir"
      npm ci --prefix "$dir" --no-audit --no-fund
      touch "$stamp"
    fi
  done
}

# The load tests (many subscribers, floods, faults, two server processes, a real Prometheus) run on
# their own after the rest of the suite, one at a time (`--test-threads=1`, test target `it`): on
# two cores, sharing the machine with the rest of the suite would make "every subscriber keeps up"
# a question of scheduling luck. These are test-name filters for that run, and `--skip`s for the
# other one.
load_tests=(cluster:: faults:: live:: observability:: limits::a_flood_of_silent_connections_is_bounded
  realtime::a_stalled_client_is_cut_alone_and_resumes screens::)
