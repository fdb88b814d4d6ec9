#!/usr/bin/env bash
# Builds the deployable artifacts into dist/: swapgate, swapctl and station-sim, each a release build with
# the Swift runtime (and Foundation) linked statically, dead code stripped, the debug info split off into
# NAME.debug beside it (linked back with a GNU debuglink, so gdb finds it), and prints their sizes and what
# each still needs from the system (only Debian's libc, libmodbus, libmosquitto, libsqlite3, libz, …:
# nothing from the Swift toolchain).
#
#   bash tools/release.sh                 # all three into dist/
#   bash tools/release.sh swapgate        # one
#   SWAPGATE_RELEASE_SCRATCH=DIR bash tools/release.sh   # build folder (default .build-release)
#   SWAPGATE_RELEASE_SMOKE=0 bash tools/release.sh        # skip the smoke check at the end
# Ends with tools/smoke-dist.sh on dist/ (each binary starts, check-config, a ~20 s demo against a loopback
# mosquitto, no ICU mapped): the script fails when the artifacts do not work. tools/test.sh does not build dist/
# (this script took 5.0 min on the shared 2-core VM with the dependencies already compiled at these flags; from a
# clean folder it compiles ~150 targets in release, several times that; the suite takes ~11 of CI's 30 min);
# ArtifactTests checks dist/ when it exists and is skipped, saying so, when it does not.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh >/dev/null
command -v objcopy >/dev/null || { echo "release: objcopy (binutils) is missing" >&2; exit 1; }

products=("$@")
[ ${#products[@]} -gt 0 ] || products=(swapgate swapctl station-sim)
scratch="${SWAPGATE_RELEASE_SCRATCH:-.build-release}"
mkdir -p dist

flags=(-c release --scratch-path "$scratch" --static-swift-stdlib
       -Xswiftc -gline-tables-only)           # enough for symbolised backtraces; SwiftPM dead-strips release links
for p in "${products[@]}"; do
    swift build "${flags[@]}" --product "$p"
done
bin="$(swift build "${flags[@]}" --show-bin-path)"

printf '\n%-12s %12s %12s %12s %12s\n' artifact unstripped stripped "xz -9" debug-info
for p in "${products[@]}"; do
    src="$bin/$p"
    out="dist/$p"
    cp "$src" "$out.full"
    objcopy --only-keep-debug "$out.full" "$out.debug"
    objcopy --strip-all --add-gnu-debuglink="$out.debug" "$out.full" "$out"
    chmod 0755 "$out"
    # xz -9: what an update of this binary costs on a metered link (the board unpacks it; nothing else changes).
    xzbytes="$(command -v xz >/dev/null && xz -9 -T1 -c "$out" | wc -c || echo 0)"
    awk -v p="$p" -v a="$(stat -c %s "$out.full")" -v b="$(stat -c %s "$out")" -v x="$xzbytes" -v c="$(stat -c %s "$out.debug")" \
        'BEGIN { printf "%-12s %11.1fM %11.1fM %11.1fM %11.1fM\n", p, a/1048576, b/1048576, x/1048576, c/1048576 }'
    rm -f "$out.full"
done
echo
for p in "${products[@]}"; do
    echo "dist/$p needs:"
    ldd "dist/$p" | awk '{print "   " $1}' | grep -v -E 'linux-vdso|ld-linux' || true
    if ldd "dist/$p" | grep -q -E 'swift|Foundation|icu'; then
        echo "release: dist/$p still needs a library from the Swift toolchain" >&2; exit 1
    fi
done

if [ "${#products[@]}" -eq 3 ] && [ "${SWAPGATE_RELEASE_SMOKE:-1}" != "0" ]; then
    echo
    bash tools/smoke-dist.sh dist
fi
