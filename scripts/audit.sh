#!/usr/bin/env bash
# Checks Cargo.lock against the RustSec advisory database with cargo-audit; any
# vulnerability, or warning not excepted (with its reason) in .cargo/audit.toml, fails.
#
# The database is a git repository, cloned once into the user cache dir and updated when
# it can be reached. LONGWRITER_ADVISORY_DB names another clone (for machines that
# cannot reach it: clone it elsewhere and copy it over).
set -euo pipefail
cd "$(dirname "$0")/.."
DB="${LONGWRITER_ADVISORY_DB:-${XDG_CACHE_HOME:-$HOME/.cache}/longwriter/advisory-db}"
if [ ! -d "$DB/.git" ]; then
    git clone -q --depth 1 https://github.com/rustsec/advisory-db.git "$DB" || {
        echo "cannot clone the RustSec advisory database into $DB; set LONGWRITER_ADVISORY_DB to a clone" >&2
        # A CI machine that cannot reach it and has no copy yet says so loudly and goes on:
        # the audit is a check of the lock file, not of this change's code.
        if [ "${CI:-}" = true ]; then
            echo "WARNING: cargo audit NOT RUN (no advisory database on this machine)" >&2
            exit 0
        fi
        exit 2
    }
elif ! timeout 20 git -C "$DB" pull -q --ff-only 2>/dev/null; then
    echo "advisory database not updated (unreachable); using the copy of $(git -C "$DB" log -1 --format=%cs)" >&2
fi
# Installed only once there is a database to check against: building it takes minutes.
command -v cargo-audit >/dev/null || cargo install cargo-audit --locked
echo "advisory database of $(git -C "$DB" log -1 --format=%cs)" >&2
cargo audit --db "$DB" --no-fetch --stale -D warnings
