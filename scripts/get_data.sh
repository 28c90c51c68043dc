#!/usr/bin/env bash
# Make sure Fashion-MNIST (the four original idx .gz files) is available, and fetch the optional
# mlbench files (UCI letter, satellite and DNA, see below).
#
# Looked for, in order:
#   /usr/share/datasets/fashion-mnist/   (Debian package dataset-fashion-mnist)
#   $MISLABEL_DATA/fashion-mnist/        (if MISLABEL_DATA is set)
#   data/fashion-mnist/                  (repository-local copy)
# If none has it: install the Debian package with apt-get, and if that is not
# possible, download the files from the official mirror into data/fashion-mnist/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
       t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
URL_BASE="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
LOCAL_DIR="data/fashion-mnist"

# find_in LABEL FILES_ARRAY_NAME DIR...: report the first DIR holding every file of the array; fail if none does
find_in() {
    local label="$1" d f ok
    local -n wanted="$2"
    shift 2
    for d in "$@"; do
        ok=1
        for f in "${wanted[@]}"; do
            [[ -f "${d}/${f}" ]] || { ok=0; break; }
        done
        if (( ok )); then
            echo "${label} found in ${d}"
            return 0
        fi
    done
    return 1
}

find_data() {
    local dirs=(/usr/share/datasets/fashion-mnist)
    if [[ -n "${MISLABEL_DATA:-}" ]]; then
        dirs+=("${MISLABEL_DATA}/fashion-mnist")
    fi
    find_in "Fashion-MNIST" FILES "${dirs[@]}" "${LOCAL_DIR}"
}

try_apt() {
    command -v apt-get >/dev/null 2>&1 || { echo "apt-get not available."; return 1; }
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "Not root and no sudo: cannot install the Debian package."
            return 1
        fi
    fi
    echo "Installing the Debian package dataset-fashion-mnist ..."
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq dataset-fashion-mnist
}

try_download() {
    echo "Downloading Fashion-MNIST from ${URL_BASE} into ${LOCAL_DIR}/ ..."
    mkdir -p "${LOCAL_DIR}"
    python3 - "${LOCAL_DIR}" "${URL_BASE}" "${FILES[@]}" <<'EOF'
import os
import sys
import urllib.request

dest, base, names = sys.argv[1], sys.argv[2], sys.argv[3:]
for name in names:
    target = os.path.join(dest, name)
    if os.path.exists(target):
        continue
    part = target + ".part"
    print(f"  {base}{name}", flush=True)
    try:
        with urllib.request.urlopen(base + name, timeout=60) as resp, open(part, "wb") as out:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
    except Exception as exc:  # network errors, HTTP errors, disk errors
        if os.path.exists(part):
            os.remove(part)
        print(f"  download failed: {exc}", file=sys.stderr)
        sys.exit(1)
    os.replace(part, target)
EOF
}

# --- UCI Letter Recognition, Landsat Satellite and StatLog DNA (pool and held-out data of the shipped detector) ---
# The R package mlbench ships them as .rda files; mislabel reads those itself, so only these files are
# extracted from the Debian package (R is not installed). Optional: a failure here only prints a warning.
MLBENCH_FILES=(LetterRecognition.rda Satellite.rda DNA.rda)
MLBENCH_DIR="data/mlbench"

find_mlbench() {
    local dirs=()
    if [[ -n "${MISLABEL_DATA:-}" ]]; then
        dirs+=("${MISLABEL_DATA}/mlbench")
    fi
    find_in "mlbench data (letter, satellite, dna)" MLBENCH_FILES "${dirs[@]}" "${MLBENCH_DIR}" \
        /usr/lib/R/site-library/mlbench/data
}

fetch_mlbench() {
    command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 || return 1
    local tmp f
    tmp="$(mktemp -d)"
    # apt-get download needs package lists; refresh them once if the first try fails
    if ! (cd "${tmp}" && apt-get download -qq r-cran-mlbench >/dev/null 2>&1); then
        if [[ "$(id -u)" == 0 ]]; then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
        fi
        (cd "${tmp}" && apt-get download -qq r-cran-mlbench >/dev/null 2>&1) || { rm -rf "${tmp}"; return 1; }
    fi
    dpkg -x "${tmp}"/r-cran-mlbench_*.deb "${tmp}/x" || { rm -rf "${tmp}"; return 1; }
    mkdir -p "${MLBENCH_DIR}"
    for f in "${MLBENCH_FILES[@]}"; do
        cp "${tmp}/x/usr/lib/R/site-library/mlbench/data/${f}" "${MLBENCH_DIR}/${f}.part" &&
            mv "${MLBENCH_DIR}/${f}.part" "${MLBENCH_DIR}/${f}" || { rm -rf "${tmp}"; return 1; }
    done
    rm -rf "${tmp}"
}

if ! find_mlbench; then
    echo "Extracting LetterRecognition.rda, Satellite.rda and DNA.rda from the Debian package r-cran-mlbench ..."
    if ! { fetch_mlbench && find_mlbench; }; then
        echo "WARNING: could not get the mlbench data (letter, satellite, dna); only the shipped detector's" >&2
        echo "         model-card script and their tests need it (see src/mislabel/data/uci.py)." >&2
    fi
fi

if find_data; then
    exit 0
fi

echo "Fashion-MNIST not found locally."
if try_apt && find_data; then
    exit 0
fi

echo "Could not install dataset-fashion-mnist with apt; falling back to a download."
if try_download && find_data; then
    exit 0
fi

cat >&2 <<EOF

ERROR: Fashion-MNIST is not available and could not be installed or downloaded.
Get it by one of:
  * sudo apt-get install dataset-fashion-mnist      (Debian / Ubuntu)
  * download the four files
      ${FILES[*]}
    from ${URL_BASE}
    (or https://github.com/zalandoresearch/fashion-mnist, directory data/fashion)
    into $(pwd)/${LOCAL_DIR}/, or into \$MISLABEL_DATA/fashion-mnist/ with
    MISLABEL_DATA set.
Then run 'make setup' again.
EOF
exit 1
