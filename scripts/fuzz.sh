#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ (clang, AddressSanitizer + UndefinedBehaviorSanitizer
# + libFuzzer) and runs each on its committed seed corpus tests/fuzz/corpus/<target>/.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]     default 30 s, all targets
# Every input must give a result or an arcnet::error; a crash, another exception, a leak, more
# than 1 s on one input, or an allocation / RSS over 1 GiB is a finding: the input is saved as
# <build>/artifacts/<target>-crash-* (or timeout-, oom-, leak-) and the script exits 1.
# Environment:
#   ARCNET_FUZZ_BUILD_DIR  where binaries, the working corpora and artifacts go (<repo>/build-fuzz)
#   ARCNET_FUZZ_CXX        the clang++ to use (clang++-14, else clang++)
#   FUZZ_MERGE=1           afterwards, add to the committed corpus the inputs of the run that reach
#                          new coverage (libFuzzer -merge=1)
#   FUZZ_JOBS              parallel compiles (default 2)
#   FUZZ_SEED              libFuzzer's -seed (default: a new one each run); CI sets it, so that a
#                          CI run explores the same inputs every time
# Reproduce a finding:  <build>/fuzz_<target> <build>/artifacts/<target>-crash-...
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${ARCNET_FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${1:-30}"
shift || true
all_targets=(safetensors pth image in_shop config pairs idx)
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all_targets[@]}")

# The largest input per target: a few times the largest seed, small enough that one input runs
# well under the 1 s limit.
declare -A max_len=([safetensors]=4096 [pth]=8192 [image]=16384 [in_shop]=4096 [config]=4096 [pairs]=4096
                    [idx]=4096)
# Extra flags and libraries per target. The image target lowers the decoders' pixel limit (see
# tests/fuzz/fuzz_image.cpp): a legitimate 16 KB PNG can decode to tens of millions of pixels.
declare -A extra=([safetensors]="" [pth]="" [image]="-DARCNET_MAX_IMAGE_PIXELS=4194304 -lturbojpeg -lpng -lz" [in_shop]=""
                  [config]="-lboost_program_options -lturbojpeg -lpng -lz" [pairs]="" [idx]="-lz")

cxx="${ARCNET_FUZZ_CXX:-}"
if [[ -z "$cxx" ]]; then
  for c in clang++-14 clang++; do
    if command -v "$c" >/dev/null; then cxx="$c"; break; fi
  done
fi
[[ -n "$cxx" ]] || { echo "fuzz.sh: clang++ not found (apt-get install clang-14)" >&2; exit 2; }

mkdir -p "$build/artifacts"
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -Wall -Wextra -Wno-unknown-pragmas -I"$root/include" -I/usr/include/eigen3)

# Build: a target is recompiled when its source, a header of the library or this script is newer.
build_one() {
  local t="$1" src="$root/tests/fuzz/fuzz_$1.cpp" bin="$build/fuzz_$1"
  if [[ -x "$bin" ]] && [[ -z "$(find "$src" "$root/tests/fuzz/fuzz_util.hpp" "$root/include" "$0" -newer "$bin" \
                                  -print -quit)" ]]; then
    return 0
  fi
  # shellcheck disable=SC2086
  if ! "$cxx" "${flags[@]}" "$src" -o "$bin.tmp" ${extra[$t]} > "$build/fuzz_$t.build.log" 2>&1; then
    cat "$build/fuzz_$t.build.log" >&2
    echo "fuzz.sh: building fuzz_$t failed" >&2
    return 1
  fi
  mv "$bin.tmp" "$bin"
  [[ -s "$build/fuzz_$t.build.log" ]] && cat "$build/fuzz_$t.build.log" >&2
  return 0
}
build_start=$SECONDS
declare -a pids=()
jobs_max="${FUZZ_JOBS:-2}"
failed_build=0
for t in "${targets[@]}"; do
  [[ -n "${max_len[$t]:-}" ]] || { echo "fuzz.sh: unknown target '$t' (have: ${all_targets[*]})" >&2; exit 2; }
  build_one "$t" & pids+=($!)
  if [[ ${#pids[@]} -ge $jobs_max ]]; then
    wait "${pids[0]}" || failed_build=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed_build=1; done
[[ $failed_build -eq 0 ]] || exit 2
echo "fuzz.sh: built ${#targets[@]} target(s) in $((SECONDS - build_start)) s with $cxx"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# The targets write each input to a file (the parsers read files): in memory when /dev/shm
# exists, in a folder removed on exit, even after a crash.
scratch_parent=/dev/shm
[[ -d $scratch_parent && -w $scratch_parent ]] || scratch_parent="$build"
export ARCNET_FUZZ_SCRATCH="$scratch_parent/arcnet_fuzz.$$"
trap 'rm -rf "$ARCNET_FUZZ_SCRATCH"' EXIT
status=0
summary=()
for t in "${targets[@]}"; do
  seeds="$root/tests/fuzz/corpus/$t"
  work="$build/corpus/$t"  # new inputs go here; the committed corpus is only read
  mkdir -p "$seeds" "$work"
  log="$build/fuzz_$t.log"
  echo "== fuzz_$t: ${seconds} s, max_len ${max_len[$t]}"
  rc=0
  "$build/fuzz_$t" -max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=1 -rss_limit_mb=1024 \
    -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" ${FUZZ_SEED:+-seed="$FUZZ_SEED"} \
    "$work" "$seeds" \
    > "$log" 2>&1 || rc=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)"
  corp="$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -1 | sed 's/corp: //' || true)"
  result=ok
  if [[ $rc -ne 0 ]]; then
    result="FAILED (exit $rc, see $log)"
    status=1
    grep -E '^==[0-9]+==ERROR|^SUMMARY|^artifact_prefix|Test unit written|uncaught exception|ALARM|out-of-memory' \
      "$log" | head -20 >&2 || true
  fi
  if [[ "${FUZZ_MERGE:-0}" == 1 && $rc -eq 0 ]]; then
    # Adds to the committed corpus only the inputs of this run that reach new coverage.
    "$build/fuzz_$t" -merge=1 -max_len="${max_len[$t]}" -timeout=1 -rss_limit_mb=1024 -malloc_limit_mb=1024 \
      "$seeds" "$work" > "$build/fuzz_$t.merge.log" 2>&1
    echo "   merged: $(find "$seeds" -type f | wc -l) files, $(du -sb "$seeds" | cut -f1) bytes in $seeds"
  fi
  summary+=("$(printf '%-12s %12s %16s  %s' "$t" "${execs:-?}" "${corp:-?}" "$result")")
done

echo
printf '%-12s %12s %16s  %s\n' target execs "corpus files/sz" result
for line in "${summary[@]}"; do echo "$line"; done
exit $status
