#!/usr/bin/env bash
# Crash safety of arcnet-train on a generated In-Shop tree (issue 7):
#  1. SIGKILL at random moments, KILLS times (seeded: the schedule of kills is reproducible),
#     a third of them while a checkpoint is being written: ARCNET_TEST_CHECKPOINT_DELAY_MS makes
#     the atomic writer pause between writing its temporary file and renaming it, and the kill
#     lands in that pause (after the 1st to 4th temporary file of the process: epoch_N, best or
#     latest). After each kill the run is continued with --resume from the last complete
#     checkpoint (or started again if there is none) until it finishes; every checkpoint it
#     leaves (latest, best, the last epoch_N) is then byte-identical to an uninterrupted run's,
#     the same files exist, and no temporary file is left (a killed write's leftovers are removed
#     when the next run starts). Should a run finish before KILLS kills, another round starts.
#  2. Disk full: with a file-size limit (ulimit -f) below a checkpoint's size, training fails
#     with one error line naming the file, the previous checkpoint stays byte-identical and no
#     temporary file is left. (arcnet-train ignores SIGXFSZ, so the write fails with EFBIG.)
#   crash_safety.sh PROGRAM_DIR MAKE_INSHOP SCRATCH_DIR CONFIG [KILLS=30] [SEED=1]
set -uo pipefail
bin=$1 make_inshop=$2 scratch=$3 config=$4 kills_wanted=${5:-30} seed=${6:-1}
rm -rf "$scratch" && mkdir -p "$scratch"
cd "$scratch"
fail() { echo "FAIL: $*"; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
"$make_inshop" data > /dev/null || fail "make_inshop"
# 12 epochs of 6 iterations with validation, two epoch checkpoints kept; one kernel thread (the
# result does not depend on it, and spinning threads on a loaded machine slow a tiny run down).
epochs=12
train=("$bin/arcnet-train" --config "$config" --data.root data --threads 1 --epochs "$epochs" --keep-last 2)
checkpoints="latest best epoch_$((epochs - 1)) epoch_$epochs"

t0=$(now_ms)
"${train[@]}" --work-dir ref > ref.log 2>&1 || { cat ref.log; fail "the uninterrupted run"; }
epoch_ms=$((($(now_ms) - t0) / epochs))  # per epoch, start-up included: scales the kill moments
for c in $checkpoints; do [[ -f ref/$c.safetensors ]] || fail "ref/$c.safetensors missing"; done
best_epoch=$(sed -n 's/.*best Recall@1 .* at epoch \([0-9]*\).*/\1/p' ref.log)
[[ -n $best_epoch ]] || { cat ref.log; fail "the uninterrupted run did not report its best epoch"; }

RANDOM=$seed
kills=0 in_write=0 write_kills=0 round=0 starts=0
declare -A hit=()  # kills during a write, by file
while ((kills < kills_wanted)); do
  round=$((round + 1))
  ((round <= 5)) || fail "5 rounds gave only $kills kills: the kills come too late for this machine"
  dir=run$round
  rm -rf "$dir"
  while :; do
    args=(--work-dir "$dir")
    [[ -f $dir/latest.safetensors ]] && args+=(--resume)
    starts=$((starts + 1))
    if ((kills >= kills_wanted)); then  # enough: let it finish
      "${train[@]}" "${args[@]}" >> "$dir.log" 2>&1 || { tail -5 "$dir.log"; fail "the last resume of $dir"; }
      break
    fi
    if ((kills % 3 == 2)); then
      # During a checkpoint write: wait for the k-th temporary file of this process (or, until
      # the run has passed the epoch whose best.safetensors is final, for that of best), then
      # kill within the writer's pause.
      delay=$((120 + RANDOM % 120)) k=$((1 + RANDOM % 4)) seen=0 last= want="*" newest=0
      for f in $(compgen -G "$dir/epoch_*.safetensors"); do
        n=${f##*epoch_} && n=${n%.safetensors}
        ((n > newest)) && newest=$n
      done
      ((newest < best_epoch)) && want=best.safetensors
      ARCNET_TEST_CHECKPOINT_DELAY_MS=$delay "${train[@]}" "${args[@]}" >> "$dir.log" 2>&1 &
      pid=$!
      while kill -0 $pid 2>/dev/null; do
        f=$(compgen -G "$dir/$want.tmp-$pid" | head -1)
        if [[ -n $f && $f != "$last" ]]; then
          seen=$((seen + 1))
          [[ $seen -eq $k || $want != "*" ]] && break
        fi
        last=$f
        sleep 0.01
      done
      sleep_ms $((RANDOM % (delay / 2)))
      write_kills=$((write_kills + 1))
    else
      # At a random moment within two epochs of the start.
      ARCNET_TEST_CHECKPOINT_DELAY_MS= "${train[@]}" "${args[@]}" >> "$dir.log" 2>&1 &
      pid=$!
      sleep_ms $((RANDOM % (2 * epoch_ms + 1)))
    fi
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    rc=$?
    if ((rc == 0)); then break; fi  # it finished before the kill
    ((rc == 137)) || { tail -5 "$dir.log"; fail "$dir: exit code $rc (expected 0 or 137 from SIGKILL)"; }
    kills=$((kills + 1))
    left=$(compgen -G "$dir/*.tmp-$pid")
    if [[ -n $left ]]; then
      in_write=$((in_write + 1))
      name=$(basename "$left")
      name=${name%%.*}
      hit[${name%%_*}]=$((${hit[${name%%_*}]:-0} + 1))
    fi
  done
  for c in $checkpoints; do
    cmp "ref/$c.safetensors" "$dir/$c.safetensors" || fail "$dir/$c.safetensors differs from the uninterrupted run's"
  done
  [[ "$(cd ref && ls ./*.safetensors)" == "$(cd "$dir" && ls ./*.safetensors)" ]] \
    || fail "$dir holds other checkpoints than the uninterrupted run: $(ls "$dir")"
  ! compgen -G "$dir/*.tmp-*" > /dev/null || fail "temporary files left in $dir: $(ls "$dir")"
done
removed=$(cat run*.log | grep -c "removed [0-9]* temporary file")
((in_write >= kills_wanted / 6)) || fail "only $in_write of $kills kills hit a checkpoint write"
((removed >= 1)) || fail "no run reported removing a killed write's temporary file"
echo "SIGKILL: $kills kills in $round round(s) of $epochs epochs ($epoch_ms ms each uninterrupted), $starts starts; $in_write during a checkpoint write" \
  "(epoch_N ${hit[epoch]:-0}, best ${hit[best]:-0}, latest ${hit[latest]:-0}; $write_kills aimed at one);" \
  "$removed starts removed leftover temporary files; final checkpoints identical to the uninterrupted run"

# 2. Disk full while saving: resume after epoch 11 with a file-size limit of half a checkpoint.
mkdir -p full && cp "ref/epoch_$((epochs - 1)).safetensors" full/latest.safetensors
limit_kib=$(($(stat -c %s ref/latest.safetensors) / 2048))
(ulimit -f "$limit_kib" && exec "${train[@]}" --work-dir full --resume) > full.out 2> full.err
rc=$?
((rc == 1)) || { cat full.out full.err; fail "disk full: exit code $rc, expected 1"; }
[[ $(wc -l < full.err) -eq 1 ]] || { cat full.err; fail "disk full: expected one error line"; }
grep -q "full/epoch_$epochs.safetensors.*File too large; the file was not changed" full.err \
  || { cat full.err; fail "disk full: the error does not name the file and the cause"; }
cmp -s "ref/epoch_$((epochs - 1)).safetensors" full/latest.safetensors || fail "disk full: latest.safetensors changed"
[[ ! -e full/epoch_$epochs.safetensors ]] || fail "disk full: a partial epoch_$epochs.safetensors exists"
! compgen -G "full/*.tmp-*" > /dev/null || fail "disk full: temporary files left: $(ls full)"
echo "disk full ($limit_kib KiB file-size limit): $(cat full.err)"
echo "PASS"
