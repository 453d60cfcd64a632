#!/usr/bin/env bash
# Numeric guards of arcnet-train on a generated In-Shop tree (issue 7):
#  1. a run that diverges (optim.lr 1e30 after a resume) stops with one error line naming the
#     iteration and the last good checkpoint, which stays byte-identical; nothing new is written;
#  2. a NaN loss, or a NaN gradient with a finite loss (injected with ARCNET_TEST_NONFINITE_LOSS_AT
#     and ARCNET_TEST_NONFINITE_GRADIENT_AT), stops it the same way, naming the parameter;
#  3. with --optim.skip-nonfinite true the run skips those steps, logs each (a line and a
#     JSON-lines record), reports the count, and resuming from a checkpoint taken before or
#     between the skipped steps ends byte-identical to the uninterrupted run (the count is part
#     of the checkpointed progress).
#   numeric_guard.sh PROGRAM_DIR MAKE_INSHOP SCRATCH_DIR CONFIG
set -uo pipefail
bin=$1 make_inshop=$2 scratch=$3 config=$4
rm -rf "$scratch" && mkdir -p "$scratch"
cd "$scratch"
fail() { echo "FAIL: $*"; exit 1; }
"$make_inshop" data > /dev/null || fail "make_inshop"
# One kernel thread: the result does not depend on it, and spinning threads on a loaded machine
# make a tiny run many times slower.
train=("$bin/arcnet-train" --config "$config" --data.root data --threads 1)
no_temporaries() { ! compgen -G "$1/*.tmp-*" > /dev/null || fail "temporary files left in $1: $(ls "$1")"; }

# The reference: 4 epochs of 6 iterations, every checkpoint kept.
"${train[@]}" --work-dir ref --keep-last 10 > ref.log 2>&1 || { cat ref.log; fail "training"; }
[[ -f ref/epoch_3.safetensors && -f ref/latest.safetensors ]] || fail "reference checkpoints missing"

# expect_stop NAME DIR PATTERN ENV... -- ARGS...: resumes DIR (holding epoch 3 as latest), which
# must fail with one error line matching PATTERN, leaving latest byte-identical and no epoch 4.
expect_stop() {
  local name=$1 dir=$2 pattern=$3
  shift 3
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  rm -rf "$dir" && mkdir -p "$dir" && cp ref/epoch_3.safetensors "$dir/latest.safetensors"
  env "${envs[@]}" "${train[@]}" --work-dir "$dir" --resume "$@" > "$dir.out" 2> "$dir.err"
  local rc=$?
  [[ $rc -eq 1 ]] || { cat "$dir.out" "$dir.err"; fail "$name: exit code $rc, expected 1"; }
  [[ $(wc -l < "$dir.err") -eq 1 ]] || { cat "$dir.err"; fail "$name: expected one error line"; }
  grep -Eq -- "$pattern" "$dir.err" || { cat "$dir.err"; fail "$name: the error does not match '$pattern'"; }
  grep -q -- "the last good checkpoint is $dir/latest.safetensors (epoch 3)" "$dir.err" \
    || { cat "$dir.err"; fail "$name: the error does not name the last good checkpoint"; }
  cmp -s ref/epoch_3.safetensors "$dir/latest.safetensors" || fail "$name: latest.safetensors was changed"
  [[ ! -e $dir/epoch_4.safetensors && ! -e $dir/best.safetensors ]] || fail "$name: a checkpoint was written"
  no_temporaries "$dir"
  echo "$name: $(cat "$dir.err")"
}

# 1. Divergence: lr 1e30 in epoch 4 (iterations 19-24).
expect_stop "diverging lr" lr '^arcnet-train: error: .*training diverged: the (loss|gradient).* at iteration (19|2[0-4]) \(epoch 4\)' \
  -- --optim.lr 1e30
# 2. A NaN gradient at iteration 21, the loss being finite.
expect_stop "non-finite gradient" grad \
  'the gradient of backbone\.conv1\.weight is non-finite \(global gradient norm nan, loss [0-9.]+\) at iteration 21 \(epoch 4\).*--optim.skip-nonfinite' \
  ARCNET_TEST_NONFINITE_GRADIENT_AT=21 --
expect_stop "non-finite loss" loss 'training diverged: the loss is nan at iteration 22 \(epoch 4\)' \
  ARCNET_TEST_NONFINITE_LOSS_AT=22 --

# 3. Skip mode: a NaN gradient at iteration 8 and a NaN loss at 13 are skipped, logged and counted.
export ARCNET_TEST_NONFINITE_GRADIENT_AT=8 ARCNET_TEST_NONFINITE_LOSS_AT=13
"${train[@]}" --work-dir skip --keep-last 10 --optim.skip-nonfinite true > skip.log 2>&1 || { cat skip.log; fail "skip mode"; }
grep -q "^arcnet-train: skipped iteration 8 (epoch 2): the gradient of backbone.conv1.weight is non-finite" skip.log \
  || { cat skip.log; fail "skip mode: no line for iteration 8"; }
grep -q "^arcnet-train: skipped iteration 13 (epoch 3): the loss is nan" skip.log \
  || { cat skip.log; fail "skip mode: no line for iteration 13"; }
for i in 8 13; do
  grep -q "\"event\":\"skip\".*\"iter\":$i," skip/log.jsonl || fail "skip mode: no log.jsonl record for iteration $i"
done
grep -q "^arcnet-train: skipped 2 of 24 steps" skip.log || { cat skip.log; fail "skip mode: no final count"; }
grep -q '"event":"end".*"skipped_steps":2' skip/log.jsonl || fail "skip mode: the end record lacks skipped_steps 2"
grep -aq '\\"skipped_steps\\":2' skip/latest.safetensors || fail "skip mode: the checkpoint does not hold skipped_steps 2"
! cmp -s ref/latest.safetensors skip/latest.safetensors || fail "skip mode: skipping changed nothing"
# Resume after epoch 1 (both skips ahead) and after epoch 2 (one behind, one ahead).
for e in 1 2; do
  rm -rf "resume$e" && mkdir -p "resume$e" && cp "skip/epoch_$e.safetensors" "resume$e/latest.safetensors"
  "${train[@]}" --work-dir "resume$e" --resume --optim.skip-nonfinite true > "resume$e.log" 2>&1 \
    || { cat "resume$e.log"; fail "resume after epoch $e in skip mode"; }
  grep -q "^arcnet-train: skipped 2 of 24 steps" "resume$e.log" || { cat "resume$e.log"; fail "resume $e: count not kept"; }
  cmp skip/latest.safetensors "resume$e/latest.safetensors" || fail "resume after epoch $e differs from the uninterrupted run"
done
unset ARCNET_TEST_NONFINITE_GRADIENT_AT ARCNET_TEST_NONFINITE_LOSS_AT
# A skipped step leaves no trace: skipping all of epoch 4 (NaN gradients at 19-21, NaN losses at
# 22-24) leaves every tensor (weights, batch-norm statistics, momentum) as after epoch 3; only
# the metadata in the safetensors header differs.
tensors() { local n; n=$(od -An -t u8 -N8 "$1" | tr -d ' '); tail -c +$((n + 9)) "$1"; }
rm -rf skipall && mkdir -p skipall && cp ref/epoch_3.safetensors skipall/latest.safetensors
ARCNET_TEST_NONFINITE_GRADIENT_AT=19,20,21 ARCNET_TEST_NONFINITE_LOSS_AT=22,23,24 "${train[@]}" --work-dir skipall \
  --resume --optim.skip-nonfinite true > skipall.log 2>&1 || { cat skipall.log; fail "skipping epoch 4"; }
grep -q "^arcnet-train: skipped 6 of 24 steps" skipall.log || { cat skipall.log; fail "skipping epoch 4: count"; }
cmp -s <(tensors ref/epoch_3.safetensors) <(tensors skipall/latest.safetensors) \
  || fail "skipped steps changed a tensor (weights, buffers or optimizer state)"
! cmp -s <(tensors ref/epoch_3.safetensors) <(tensors ref/epoch_4.safetensors) || fail "epoch 4 changed no tensor"
echo "skip mode: 2 steps skipped, logged and counted; resumed runs byte-identical"
echo "PASS"
