#!/usr/bin/env bash
# bench/run.sh - the main job: build oncestore optimized and run the bench
# harness with its defaults (see README "Bench").  Extra arguments go to
# oncebench, e.g. bench/run.sh --keys 10000000 --threads 1,2,4.
set -eu
cd "$(dirname "$0")/.."

packages=(meson ninja-build pkg-config gcc liburcu-dev libxxhash-dev libsodium-dev)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -d build-bench ] || meson setup build-bench --buildtype=release >/dev/null
ninja -C build-bench bench/oncebench >/dev/null
exec ./build-bench/bench/oncebench "$@"
