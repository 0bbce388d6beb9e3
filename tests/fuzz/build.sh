#!/usr/bin/env bash
# tests/fuzz/build.sh [BUILD_DIR] - builds the libFuzzer targets of tests/fuzz/
# (fuzz_api, fuzz_datadir) with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer (every report fatal), into BUILD_DIR
# (default build-fuzz/).
#
# The library is compiled straight from core/*.c and wal/*.c with coverage
# instrumentation (-fsanitize=fuzzer-no-link) into a static archive; the
# targets link it with their internal headers (core/internal.h for
# once__dump, wal/format.h and wal/recover.h for the data-directory
# mutator).  Needs clang and libclang-rt-<version>-dev (Debian 12: clang-14,
# libclang-rt-14-dev), plus the library's own build dependencies.
#
# Environment: CC (default clang), JOBS (parallel compiles, default nproc),
# TARGETS (default "fuzz_api fuzz_datadir").
set -eu
cd "$(dirname "$0")/../.."
out=${1:-build-fuzz}
case "$(basename "$out")" in
build-fuzz*) ;;
*) echo "build.sh: the build directory must be named build-fuzz*" >&2; exit 2 ;;
esac
CC=${CC:-clang}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$out/obj"

deps="liburcu-bp liburcu-cds libxxhash libsodium libpq jansson"
# shellcheck disable=SC2207
dep_cflags=($(pkg-config --cflags $deps))
# shellcheck disable=SC2207
dep_libs=($(pkg-config --libs $deps))

common=(-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
	-fsanitize=address,undefined -fno-sanitize-recover=all
	-Iinclude -Icore -Iwal -Iapi -Ipg "${dep_cflags[@]}")
# The library as the project builds it (its own warnings are the meson
# build's business: -Werror here only for the fuzz targets).
lib_flags=("${common[@]}" -fsanitize=fuzzer-no-link -Wno-unused-command-line-argument)
target_flags=("${common[@]}" -fsanitize=fuzzer -Wall -Wextra -Werror -Wshadow
	-Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers)

srcs=(api/*.c core/*.c wal/*.c pg/*.c)
objs=()
for src in "${srcs[@]}"; do
	objs+=("$out/obj/$(echo "$src" | tr / _).o")
done

# Compile the library in parallel; a failure prints the compiler's output.
export CC out
printf '%s\n' "${srcs[@]}" | xargs -P "$JOBS" -I{} sh -c '
	o="$out/obj/$(echo "{}" | tr / _).o"
	exec "$CC" "$@" -c "{}" -o "$o"' sh "${lib_flags[@]}"
rm -f "$out/liboncestore-fuzz.a"
ar rcs "$out/liboncestore-fuzz.a" "${objs[@]}"

for t in ${TARGETS:-fuzz_api fuzz_datadir}; do
	"$CC" "${target_flags[@]}" "tests/fuzz/$t.c" "$out/liboncestore-fuzz.a" \
		"${dep_libs[@]}" -lpthread -o "$out/$t"
done
echo "build.sh: built ${TARGETS:-fuzz_api fuzz_datadir} in $out"
