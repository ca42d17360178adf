#!/usr/bin/env bash
# Fuzzes the decoders that read bytes vigil does not control, with libFuzzer:
#
#   frame     the channel frame decoder (VigilWire Frame/Guardian: what a worker writes)
#   notify    the sd_notify datagram parser (VigilWire NotifyMessage: any NOTIFY_SOCKET sender)
#   state     the checkpoint codec's reader (VigilWire StateCodec: a restored checkpoint)
#   topology  the topology loader from raw bytes (libyaml, YAMLNode, decoder, validator)
#
# Usage: Scripts/fuzz.sh [all|frame|notify|state|topology] [runs]    (default: all 10000000)
#        Scripts/fuzz.sh quick      50,000 inputs per target, a smoke test (seconds)
#        Scripts/fuzz.sh seeds      rewrite Fuzz/seeds/ with the real encoders
#
# Each target is one file under Fuzz/ defining LLVMFuzzerTestOneInput, built with
# `swiftc -sanitize=fuzzer,address -parse-as-library` *together with the sources of the
# module it tests* rather than linked against SwiftPM's .build objects: those are not
# instrumented for coverage (libFuzzer would fuzz blind), their layout changes between
# toolchains and configurations, and compiling the harness into the same module reaches
# internal entry points (TopologyLoader.load(bytes:file:)) without @testable. The topology
# target needs VigilCore as a module, so VigilCore is built first (instrumented, static
# library plus .swiftmodule) and the harness module is Sources/VigilHost/Topology/*.swift +
# Fuzz/TopologyFuzz.swift, importing CYAML through Sources/CYAML/module.modulemap and
# linking the system libyaml (not instrumented, but exercised). `swift build` never sees
# Fuzz/. Binaries go to .build/fuzz/.
#
# Corpora: Fuzz/corpus/<target>/ (grown by libFuzzer, not committed) is seeded from the
# committed Fuzz/seeds/<target>/ and, for topology, from every YAML file in the repo.
# A crash, timeout (-timeout, seconds per input), out-of-memory (-rss_limit_mb, also per
# allocation via -malloc_limit_mb) or leak leaves its input as Fuzz/artifacts/<target>/
# crash-*|timeout-*|oom-*|leak-* and makes this script fail; replay one with
#   .build/fuzz/<target> Fuzz/artifacts/<target>/crash-...
# Environment: FUZZ_JOBS_NICE (default 10), FUZZ_RSS_MB (default 2048), FUZZ_TIMEOUT (10),
# FUZZ_ASAN (1: AddressSanitizer on every target, 0: on none; default: all but topology),
# FUZZ_OUT (where the binaries go, default .build/fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-all}"
runs="${2:-10000000}"
if [ "$what" = quick ]; then what=all; runs="${2:-50000}"; fi
out=${FUZZ_OUT:-.build/fuzz}
mkdir -p "$out"
# AddressSanitizer (-sanitize=address, works with this toolchain) is on for the VigilWire
# targets, where it costs little. The topology target runs without it unless FUZZ_ASAN=1:
# its Swift code is memory-safe and libyaml is a system library ASan does not instrument,
# so ASan would only halve its speed (measured: ~600 vs ~1,200 inputs/s) for nothing.
# -use-ld=lld: gold warns about every ASan helper symbol.
flags_for() {
  local sanitizers=fuzzer,address
  if [ "$1" = topology ] && [ "${FUZZ_ASAN:-0}" != 1 ]; then sanitizers=fuzzer; fi
  if [ "${FUZZ_ASAN:-}" = 0 ]; then sanitizers=fuzzer; fi
  flags=(-sanitize="$sanitizers" -parse-as-library -O -g -use-ld=lld -swift-version 6)
}

build_vigilcore() {
  # Instrumented VigilCore for the topology target (rebuilt when a source or the flags changed).
  local srcs=(Sources/VigilCore/*.swift Sources/VigilCore/*/*.swift)
  local stamp="$out/libVigilCore.flags"
  if [ ! -f "$out/libVigilCore.a" ] || [ -n "$(find "${srcs[@]}" -newer "$out/libVigilCore.a")" ] \
     || [ "$(cat "$stamp" 2>/dev/null)" != "${flags[*]}" ]; then
    mkdir -p "$out/modules"
    swiftc "${flags[@]}" -module-name VigilCore -emit-library -static -o "$out/libVigilCore.a" \
      -emit-module -emit-module-path "$out/modules/VigilCore.swiftmodule" "${srcs[@]}"
    echo "${flags[*]}" >"$stamp"
  fi
}

# True when $out/$1 is missing, older than one of the other arguments, or built with other flags.
stale() {
  local bin=$out/$1; shift
  [ -f "$bin" ] && [ "$(cat "$bin.flags" 2>/dev/null)" = "${flags[*]}" ] && [ -z "$(find "$@" -newer "$bin")" ] && return 1
  return 0
}

build() {
  local target=$1 module
  flags_for "$target"
  case "$target" in
    frame|notify|state)
      module="$(tr '[:lower:]' '[:upper:]' <<<"${target:0:1}")${target:1}Fuzz"
      stale "$target" Sources/VigilWire/*.swift "Fuzz/$module.swift" || return 0
      swiftc "${flags[@]}" -module-name "$module" Sources/VigilWire/*.swift "Fuzz/$module.swift" -o "$out/$target" ;;
    topology)
      build_vigilcore
      stale topology Sources/VigilHost/Topology/*.swift Fuzz/TopologyFuzz.swift "$out/libVigilCore.a" || return 0
      swiftc "${flags[@]}" -module-name TopologyFuzz -I "$out/modules" -I Sources/CYAML \
        Sources/VigilHost/Topology/*.swift Fuzz/TopologyFuzz.swift "$out/libVigilCore.a" -lyaml -lm -o "$out/topology" ;;
    *) echo "fuzz: unknown target '$target' (frame, notify, state, topology)" >&2; exit 2 ;;
  esac
  echo "${flags[*]}" >"$out/$target.flags"
}

seed_corpus() {
  local target=$1 corpus=Fuzz/corpus/$1
  mkdir -p "$corpus"
  if [ "$target" = topology ]; then
    for f in Topology/*.yaml Topology/scenarios/*.yaml Tests/VigilHostTests/Fixtures/*.yaml; do
      [ -f "$f" ] && cp -n "$f" "$corpus/seed-$(basename "$(dirname "$f")")-$(basename "$f")"
    done
  else
    cp -n Fuzz/seeds/"$target"/* "$corpus/"
  fi
}

run() {
  local target=$1 corpus=Fuzz/corpus/$1 artifacts=Fuzz/artifacts/$1 dict=()
  mkdir -p "$artifacts"
  seed_corpus "$target"
  [ -f "Fuzz/dict/$target.dict" ] && dict=(-dict="Fuzz/dict/$target.dict")
  echo "fuzz: $target, $runs inputs" >&2
  # -max_len: just past each decoder's own limit (a frame 16 KiB, a datagram 8 KiB), so
  # the refusal of a larger input is exercised too; a topology file is a few KiB (the
  # trading tree 3.5 KiB) and a checkpoint is at most 16000 bytes. -print_final_stats
  # gives the figures for Fuzz/README.md (execs/s, peak RSS).
  local max_len
  case "$target" in frame) max_len=16400 ;; notify) max_len=8200 ;; *) max_len=16000 ;; esac
  # The Swift backtracer is off: libFuzzer reports the trap itself and saves the input.
  SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" nice -n "${FUZZ_JOBS_NICE:-10}" \
    "$out/$target" "$corpus" -runs="$runs" -max_len="$max_len" -timeout="${FUZZ_TIMEOUT:-10}" \
    -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -malloc_limit_mb="${FUZZ_RSS_MB:-2048}" \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "${dict[@]}"
}

case "$what" in
  seeds)
    swiftc -parse-as-library -module-name MakeSeeds Sources/VigilWire/*.swift Fuzz/MakeSeeds.swift -o "$out/make-seeds"
    rm -rf Fuzz/seeds/frame Fuzz/seeds/notify Fuzz/seeds/state
    "$out/make-seeds" Fuzz/seeds ;;
  all)
    for t in frame notify state topology; do build "$t"; done
    for t in frame notify state topology; do run "$t"; done ;;
  *)
    build "$what"
    run "$what" ;;
esac
