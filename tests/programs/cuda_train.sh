#!/usr/bin/env bash
# arcnet-train --device cuda on a generated In-Shop tree. Two modes:
#   no-device  (a machine without a usable GPU): arcnet-train --device cuda ends with one clear
#              error line, exit 1, before anything is written, and so does arcnet-test; exits 77
#              (skipped) when a GPU is usable.
#   train      (a GPU machine): the tiny run on cuda reaches the CPU run's final loss (to 5%:
#              float sums in another order) and Recall@1 >= 75; arcnet-test on the CPU reads
#              the checkpoint the GPU wrote; a run stopped after epoch 2 and resumed ends with
#              the same checkpoint, byte for byte, as the uninterrupted cuda run; --precision
#              bf16 trains too; arcnet-test --device cuda scores the checkpoint as the CPU does
#              (Recall@1 within 1 point); Partial FC with sampling reaches the CPU's final loss
#              (to 5%). Exits 77 (skipped) without a usable GPU.
#   cuda_train.sh MODE PROGRAM_DIR MAKE_INSHOP SCRATCH_DIR CONFIG
set -uo pipefail
mode=$1 bin=$2 make_inshop=$3 scratch=$4 config=$5
rm -rf "$scratch" && mkdir -p "$scratch"
cd "$scratch"
fail() { echo "FAIL: $*"; exit 1; }
"$make_inshop" data > /dev/null || fail "make_inshop"
train=("$bin/arcnet-train" --config "$config" --data.root data)

# A usable GPU? arcnet-train says so itself: its device check runs before the data is read.
"${train[@]}" --device cuda --epochs 2 --work-dir probe > probe.out 2> probe.err
have_gpu=1
grep -q "no usable CUDA device" probe.err && have_gpu=0
[[ $have_gpu == 0 ]] || ! grep -q "error" probe.err || { cat probe.err; fail "the probe run failed"; }

if [[ $mode == no-device ]]; then
  [[ $have_gpu == 0 ]] || { echo "a CUDA device is usable here: the no-device check does not apply"; exit 77; }
  "${train[@]}" --device cuda --work-dir w > bad.out 2> bad.err
  rc=$?
  [[ $rc -eq 1 ]] || fail "exit code $rc, expected 1"
  [[ $(wc -l < bad.err) -eq 1 ]] || { cat bad.err; fail "expected one error line"; }
  grep -q "^arcnet-train: error: arcnet: device: 'cuda': no usable CUDA device on this machine (" bad.err ||
    { cat bad.err; fail "unclear error"; }
  [[ ! -e w ]] || fail "the work dir was created before the device check"
  echo "no device: $(cat bad.err)"
  "$bin/arcnet-test" --config "$config" --data.root data --checkpoint nothing.safetensors --device cuda \
    > bad.out 2> bad.err
  rc=$?
  [[ $rc -eq 1 && $(wc -l < bad.err) -eq 1 ]] || { cat bad.err; fail "arcnet-test --device cuda: exit $rc"; }
  grep -q "^arcnet-test: error: arcnet: .*" bad.err || { cat bad.err; fail "arcnet-test: unclear error"; }
  echo "no device: $(cat bad.err)"
  exit 0
fi

[[ $have_gpu == 1 ]] || { echo "no usable CUDA device: $(cat probe.err)"; exit 77; }
final_loss() { sed -n 's/.*"mode":"train".*"loss":\([-0-9.e]*\).*/\1/p; s/.*"loss":\([-0-9.e]*\).*"mode":"train".*/\1/p' "$1/log.jsonl" | tail -1; }

"${train[@]}" --device cpu --work-dir cpu > cpu.log 2>&1 || { cat cpu.log; fail "cpu training"; }
"${train[@]}" --device cuda --work-dir gpu > gpu.log 2>&1 || { cat gpu.log; fail "cuda training"; }
cat gpu.log
a=$(final_loss cpu) b=$(final_loss gpu)
echo "final training loss: cpu $a, cuda $b"
awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d <= 0.05 * a) }' ||
  fail "cuda final loss $b is not within 5% of the cpu's $a"

"$bin/arcnet-test" --config "$config" --data.root data --checkpoint gpu/latest.safetensors --out metrics.json \
  > test.log 2>&1 || { cat test.log; fail "arcnet-test on the cuda checkpoint"; }
recall=$(sed -n 's/.*"recall@1": \([0-9.]*\).*/\1/p' metrics.json)
echo "Recall@1 of the cuda-trained checkpoint (evaluated on the CPU): $recall"
awk -v r="$recall" 'BEGIN { exit !(r >= 75) }' || fail "Recall@1 $recall < 75"
"$bin/arcnet-test" --config "$config" --data.root data --checkpoint gpu/latest.safetensors --device cuda \
  --out metrics_gpu.json > test_gpu.log 2>&1 || { cat test_gpu.log; fail "arcnet-test --device cuda"; }
recall_gpu=$(sed -n 's/.*"recall@1": \([0-9.]*\).*/\1/p' metrics_gpu.json)
echo "the same checkpoint evaluated on the GPU: Recall@1 $recall_gpu"
awk -v a="$recall" -v b="$recall_gpu" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b != "" && d <= 1) }' ||
  fail "Recall@1 on the GPU ($recall_gpu) differs from the CPU's ($recall) by more than 1 point"

"${train[@]}" --device cuda --work-dir resumed --epochs 2 > part.log 2>&1 || { cat part.log; fail "cuda epochs 1-2"; }
"${train[@]}" --device cuda --work-dir resumed --resume > resumed.log 2>&1 || { cat resumed.log; fail "cuda resume"; }
cmp gpu/latest.safetensors resumed/latest.safetensors || fail "the resumed cuda run differs from the uninterrupted one"
echo "cuda resume: final checkpoint identical"

"${train[@]}" --device cuda --precision bf16 --work-dir bf16 > bf16.log 2>&1 || { cat bf16.log; fail "cuda bf16"; }
echo "bf16: final training loss $(final_loss bf16)"

# Partial FC on the GPU, one process (every class on this rank) with sampling: the same seeded
# draws as on the CPU, so the final losses agree as the plain runs' do.
pfc=(--head.partial-fc true --head.sample-rate 0.5)
"${train[@]}" --device cpu "${pfc[@]}" --work-dir pfc_cpu > pfc_cpu.log 2>&1 || { cat pfc_cpu.log; fail "cpu partial fc"; }
"${train[@]}" --device cuda "${pfc[@]}" --work-dir pfc_gpu > pfc_gpu.log 2>&1 || { cat pfc_gpu.log; fail "cuda partial fc"; }
a=$(final_loss pfc_cpu) b=$(final_loss pfc_gpu)
echo "Partial FC final training loss: cpu $a, cuda $b"
awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d <= 0.05 * a) }' ||
  fail "cuda Partial FC final loss $b is not within 5% of the cpu's $a"
echo "cuda training: all checks passed"
