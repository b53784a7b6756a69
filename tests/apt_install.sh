# Sourced by the tests' install scripts: Debian packages with apt-get, when this machine can.
#
#   apt_install SCRIPT CONSEQUENCE PACKAGE...
#
# installs PACKAGE... as root or with password-less sudo. It never fails the build: without
# apt-get (not Debian), without root or sudo, or when apt-get fails (no network), it prints a
# note on stderr, "SCRIPT: what went wrong; CONSEQUENCE", and returns 0, and the tests that
# need the packages skip and say why.

apt_install() {
    local script=$1 consequence=$2
    shift 2
    local sudo_cmd=()
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$script: apt-get not found (not a Debian-based machine); $consequence" >&2
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo_cmd=(sudo -n)
        else
            echo "$script: not root and no password-less sudo; $consequence" >&2
            return 0
        fi
    fi
    echo "$script: installing $* with apt-get" >&2
    if ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1; then
        echo "$script: apt-get update failed; $consequence" >&2
        return 0
    fi
    if ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; then
        echo "$script: apt-get install $* failed; $consequence" >&2
    fi
    return 0
}
