#!/usr/bin/env bash
# arcnet-train on 2 ranks under mpirun (issue 8), on a generated In-Shop tree:
#  1. 2 ranks x batch 4 with synchronised batch norm end 2 epochs (12 steps) with the weights of
#     1 process x batch 8, to 1e-5 relative (the sample order, augmentation, loss and gradient
#     average are the same; only the order of floating-point sums differs);
#  2. Partial FC (class centers sharded across the ranks, sample rate 1) ends with the weights
#     and optimizer state of the plain head on 2 ranks, to 1e-5;
#  3. Partial FC with sampling (rate 0.5) resumed after epoch 1 ends byte-identical to the
#     uninterrupted run; only rank 0 writes (one log, one start record);
#  4. a rank killed (SIGKILL) at iteration 3 ends the whole job with an error, a rank that
#     stalls makes the other stop with an error naming the timeout (dist.timeout 3 s), and a
#     rank that meets an unreadable image stops the job with an error naming itself and the file.
#   distributed.sh PROGRAM_DIR MAKE_INSHOP SCRATCH_DIR CONFIG PYTHON MPIRUN [MPIRUN OPTIONS...]
set -uo pipefail
bin=$1 make_inshop=$2 scratch=$3 config=$4 python=$5
shift 5
mpirun=("$@")
"$python" -c 'import numpy' 2> /dev/null || { echo "SKIP: $python has no numpy (compare_checkpoints.py)"; exit 77; }
compare="$python $(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/compare_checkpoints.py"
rm -rf "$scratch" && mkdir -p "$scratch"
cd "$scratch"
fail() { echo "FAIL: $*"; exit 1; }
"$make_inshop" data > /dev/null || fail "make_inshop"
# One kernel thread per rank; 1 sub-center and a small lr: no arg-max between near-equal
# sub-centers or ReLU kink that a rounding difference could flip (which would be a real, if
# tiny, difference in the computation, and is amplified by training).
common=("$bin/arcnet-train" --config "$config" --threads 1 --head.subcenters 1 --optim.lr 0.01
        --optim.warmup-epochs 0 --eval.interval -1 --epochs 2)
train=("${common[@]}" --data.root data)
on2() { "${mpirun[@]}" -np 2 "$@"; }

# 1. Data parallel with synchronised batch norm = one process with the global batch.
"${train[@]}" --work-dir one --data.batch-size 8 > one.log 2>&1 || { cat one.log; fail "1 process"; }
on2 "${train[@]}" --work-dir two --data.batch-size 4 --dist.sync-bn true > two.log 2>&1 || { cat two.log; fail "2 ranks"; }
grep -q "2 ranks (MPI" two.log || { cat two.log; fail "the run does not report 2 ranks"; }
$compare one/latest.safetensors two/latest.safetensors --max 1e-5 > two.cmp
rc=$?
sed 's/^/2 ranks x batch 4 vs 1 process x batch 8: /' two.cmp
[[ $rc -eq 0 ]] || fail "2 ranks x batch 4 differ from 1 process x batch 8"
[[ $(grep -c '"event":"start"' two/log.jsonl) -eq 1 ]] || fail "expected one start record (rank 0 logs alone)"

# 2. Partial FC, sample rate 1: the plain head's training, weights and optimizer state.
on2 "${train[@]}" --work-dir pfc --data.batch-size 4 --dist.sync-bn true --head.partial-fc true > pfc.log 2>&1 \
  || { cat pfc.log; fail "Partial FC"; }
$compare two/latest.safetensors pfc/latest.safetensors --with-optimizer --max 1e-5 > pfc.cmp
rc=$?
sed 's/^/Partial FC vs plain head, 2 ranks: /' pfc.cmp
[[ $rc -eq 0 ]] || fail "Partial FC differs from the plain head"

# 3. Partial FC with sampling: resuming after epoch 1 is exact (sampling continues at its step).
sampled=(--data.batch-size 2 --head.partial-fc true --head.sample-rate 0.5)
on2 "${train[@]}" "${sampled[@]}" --work-dir straight > straight.log 2>&1 || { cat straight.log; fail "sampled run"; }
mkdir resumed && cp straight/epoch_1.safetensors resumed/latest.safetensors
on2 "${train[@]}" "${sampled[@]}" --work-dir resumed --resume > resumed.log 2>&1 || { cat resumed.log; fail "resume"; }
cmp -s straight/latest.safetensors resumed/latest.safetensors || fail "Partial FC with sampling: resumed run differs"
echo "Partial FC, sample rate 0.5: resumed after epoch 1 = uninterrupted, byte for byte"

# 4. A rank that dies or stalls stops the job with an error instead of a hang.
expect_failure() {  # NAME PATTERN ENV -- ARGS
  local name=$1 pattern=$2 env=$3
  shift 4
  local start=$SECONDS
  timeout 120 "${mpirun[@]}" -np 2 -x "$env" "${train[@]}" --work-dir "$name" --data.batch-size 4 "$@" \
    > "$name.log" 2>&1
  local rc=$? took=$((SECONDS - start))
  [[ $rc -ne 0 && $rc -ne 124 ]] || { cat "$name.log"; fail "$name: exit code $rc (124: a hang)"; }
  grep -Eq -- "$pattern" "$name.log" || { cat "$name.log"; fail "$name: the output does not match '$pattern'"; }
  [[ ! -e $name/latest.safetensors ]] || fail "$name: a checkpoint was written"
  echo "$name: stopped in ${took} s with exit code $rc"
}
expect_failure killed 'exited on signal 9|killed|signal 9' ARCNET_TEST_KILL_RANK_AT=1:3 --
expect_failure stalled 'rank 0: error: .*did not complete within 3 s: another rank has failed or stalled' \
  ARCNET_TEST_STALL_RANK_AT=1:3 -- --dist.timeout 3
# A rank that meets an unreadable training image reports it (rank, file) and ends the job at once.
bad=$(sed -n 's/^\(img\/[^ ]*\) id_[0-9]* train$/\1/p' data/Eval/list_eval_partition.txt | sed -n 5p)
cp -r data baddata && printf 'not a JPEG' > "baddata/Img/$bad"
start=$SECONDS
timeout 120 "${mpirun[@]}" -np 2 "${common[@]}" --data.root baddata --work-dir badimage --data.batch-size 4 \
  > badimage.log 2>&1
rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || { cat badimage.log; fail "bad image: exit code $rc (124: a hang)"; }
grep -Eq "arcnet-train: rank [01]: error: .*${bad//./\\.}" badimage.log \
  || { cat badimage.log; fail "bad image: no error line naming the rank and the file"; }
echo "bad image: stopped in $((SECONDS - start)) s: $(grep -o 'rank [01]: error: .*' badimage.log | head -1 | cut -c1-120)"
echo "distributed: all checks passed"
