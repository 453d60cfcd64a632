#!/usr/bin/env bash
# End-to-end test of arcnet-train, arcnet-test, arcnet-retrieve and arcnet-invert on a generated
# In-Shop tree: train, evaluate (Recall@1 well above chance), verify pairs, retrieve (the right
# item first), invert an embedding (cosine >= 0.9), kill a run with
# SIGKILL mid-way and resume it (the final checkpoint equals an uninterrupted run's, byte for
# byte), and bad input (one clear error line, non-zero exit, no checkpoint overwritten).
#   run_programs.sh PROGRAM_DIR MAKE_INSHOP SCRATCH_DIR CONFIG
set -uo pipefail
bin=$1 make_inshop=$2 scratch=$3 config=$4
rm -rf "$scratch" && mkdir -p "$scratch"
cd "$scratch"
fail() { echo "FAIL: $*"; exit 1; }
"$make_inshop" data || fail "make_inshop"
train=("$bin/arcnet-train" --config "$config" --data.root data)

# 1. An uninterrupted run.
"${train[@]}" --work-dir full > full.log 2>&1 || { cat full.log; fail "training"; }
grep -q "Epoch(val) \[4\]" full.log || { cat full.log; fail "no validation line after epoch 4"; }
for f in latest best epoch_3 epoch_4; do [[ -f full/$f.safetensors ]] || fail "full/$f.safetensors missing"; done
[[ ! -f full/epoch_2.safetensors ]] || fail "keep-last = 2 should have removed epoch_2"
[[ -s full/log.jsonl && -s full/curves.png ]] || fail "log.jsonl or curves.png missing"
grep -q '"mode":"val"' full/log.jsonl || fail "no validation record in log.jsonl"

# 2. arcnet-test: Recall@1 well above chance (about 25% for a random ranking here).
"$bin/arcnet-test" --config "$config" --data.root data --checkpoint full/latest.safetensors --out metrics.json \
  > test.log 2>&1 || { cat test.log; fail "arcnet-test"; }
cat test.log
recall=$(sed -n 's/.*"recall@1": \([0-9.]*\).*/\1/p' metrics.json)
awk -v r="$recall" 'BEGIN { exit !(r >= 75) }' || fail "Recall@1 $recall < 75"
grep -q '"mAP@10_integrate"' metrics.json || fail "metrics.json lacks the integrate mode"

# 3. arcnet-retrieve: each query's first match is an image of its own item; a saved gallery gives the same.
query=$(sed -n 's/^\(img\/[^ ]*\) \(id_[0-9]*\) query$/\1/p' data/Eval/list_eval_partition.txt | head -1)
item=$(echo "$query" | cut -d/ -f2)
mkdir -p prototype
sed -n 's/^\(img\/[^ ]*\) \(id_[0-9]*\) gallery$/\1/p' data/Eval/list_eval_partition.txt | while read -r g; do
  mkdir -p "prototype/$(dirname "$g")" && cp "data/Img/$g" "prototype/$g"
done
"$bin/arcnet-retrieve" --config "$config" --checkpoint full/latest.safetensors --prototype prototype \
  --save-gallery gallery.safetensors --topk 3 --grid grid.png "data/Img/$query" > retrieve.log 2>&1 \
  || { cat retrieve.log; fail "arcnet-retrieve"; }
cat retrieve.log
first=$(grep -m1 '^  1\. ' retrieve.log)
[[ $first == *"/$item/"* ]] || fail "first match '$first' is not an image of $item"
[[ -s grid.png && -s gallery.safetensors ]] || fail "grid.png or gallery.safetensors missing"
"$bin/arcnet-retrieve" --config "$config" --checkpoint full/latest.safetensors --prototype gallery.safetensors \
  --topk 3 "data/Img/$query" > retrieve2.log 2>&1 || { cat retrieve2.log; fail "arcnet-retrieve from a saved gallery"; }
diff <(grep '^  ' retrieve.log) <(grep '^  ' retrieve2.log) || fail "saved gallery gives other matches"

# 3b. Verification pairs drawn from the query set, then read back; embedding inversion.
"$bin/arcnet-test" --config "$config" --data.root data --checkpoint full/latest.safetensors --pairs pairs.txt \
  --make-pairs 2 --flip --out verify.json > verify.log 2>&1 || { cat verify.log; fail "arcnet-test --pairs"; }
cat verify.log
[[ $(grep -c ' [01]$' pairs.txt) -eq 40 ]] || fail "pairs.txt should hold 40 pairs"
accuracy=$(sed -n 's/.*"accuracy": \([0-9.]*\).*/\1/p' verify.json)
awk -v a="$accuracy" 'BEGIN { exit !(a >= 60) }' || fail "verification accuracy $accuracy < 60 (chance: 50)"
grep -q '"tar_at_far"' verify.json || fail "verify.json lacks TAR@FAR"
"$bin/arcnet-invert" --config "$config" --checkpoint full/latest.safetensors --target "data/Img/$query" --steps 80 \
  --out inverted.png --strip strip.png --save-embedding target.safetensors > invert.log 2>&1 || { cat invert.log; fail "arcnet-invert"; }
cat invert.log
cosine=$(sed -n 's/.*cosine to the target \([-0-9.]*\).*/\1/p' invert.log)
awk -v c="$cosine" 'BEGIN { exit !(c >= 0.9) }' || fail "inversion reached cosine $cosine < 0.9"
[[ -s inverted.png && -s strip.png && -s target.safetensors ]] || fail "inverted.png, strip.png or target.safetensors missing"
"$bin/arcnet-invert" --config "$config" --checkpoint full/latest.safetensors --embedding target.safetensors \
  --size 32x32 --steps 80 --out inverted2.png > invert2.log 2>&1 || { cat invert2.log; fail "arcnet-invert --embedding"; }
grep -q "cosine to the target $cosine" invert2.log || { cat invert2.log; fail "a saved embedding inverts differently"; }

# 4. Kill a run with SIGKILL after its first epoch, resume it, compare with the uninterrupted run.
"${train[@]}" --work-dir killed > killed.log 2>&1 &
pid=$!
# latest.safetensors is written last (after epoch_N and best): wait for it, not for epoch_1.
for _ in $(seq 600); do [[ -f killed/latest.safetensors ]] && break; sleep 0.05; done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
[[ -f killed/latest.safetensors ]] || fail "no checkpoint before the kill"
[[ ! -f killed/epoch_4.safetensors ]] || fail "the run finished before it was killed"
"${train[@]}" --work-dir killed --resume > resumed.log 2>&1 || { cat resumed.log; fail "resume"; }
grep -q "resumed from" resumed.log || fail "the resumed run did not say where it resumed"
cmp full/latest.safetensors killed/latest.safetensors || fail "resumed run differs from the uninterrupted one"
echo "resume after SIGKILL: final checkpoint identical"

# 5. Bad input: one error line, exit code 1, nothing overwritten.
sum=$(sha256sum full/*.safetensors)
expect_error() {  # expect_error NAME PATTERN COMMAND...
  local name=$1 pattern=$2
  shift 2
  "$@" > bad.out 2> bad.err
  local rc=$?
  [[ $rc -ne 0 ]] || fail "$name: exit code 0"
  [[ $(wc -l < bad.err) -eq 1 ]] || { cat bad.err; fail "$name: expected one error line"; }
  grep -q -- "$pattern" bad.err || { cat bad.err; fail "$name: error does not mention '$pattern'"; }
  echo "bad input ($name): $(cat bad.err)"
}
printf '[data]\nbatch-sise = 8\n' > unknown.cfg
printf '[data]\nbatch-size = eight\n' > badvalue.cfg
mkdir -p empty_gallery
"$bin/arcnet-train" --config "$config" --data.root data --head.subcenters 1 --work-dir other --epochs 1 --optim.warmup-epochs 0 \
  --eval.interval 0 > /dev/null 2>&1 || fail "training a second model"
expect_error "missing dataset root" "no_such_dir" "$bin/arcnet-train" --config "$config" --work-dir full --data.root no_such_dir
expect_error "unknown config key" "batch-sise" "$bin/arcnet-train" --config unknown.cfg --work-dir full
expect_error "bad config value" "batch-size" "$bin/arcnet-train" --config badvalue.cfg --work-dir full
expect_error "existing run" "--resume" "${train[@]}" --work-dir full
expect_error "checkpoint does not fit" "does not fit" "${train[@]}" --work-dir fresh --load-from other/latest.safetensors
expect_error "empty gallery folder" "holds no image" "$bin/arcnet-retrieve" --checkpoint full/latest.safetensors \
  --prototype empty_gallery "data/Img/$query"
expect_error "bad checkpoint file" "safetensors" "$bin/arcnet-test" --config "$config" --data.root data \
  --checkpoint unknown.cfg
echo "1 2 3" > short_embedding.txt
expect_error "embedding of the wrong width" "holds 3 values" "$bin/arcnet-invert" --checkpoint full/latest.safetensors \
  --embedding short_embedding.txt --size 32x32
expect_error "target and embedding" "either --target" "$bin/arcnet-invert" --checkpoint full/latest.safetensors \
  --embedding short_embedding.txt --target "data/Img/$query"
expect_error "bad size" "size" "$bin/arcnet-invert" --checkpoint full/latest.safetensors --embedding target.safetensors \
  --size 32by32
echo "img/a.jpg img/b.jpg maybe" > bad_pairs.txt
expect_error "bad pairs line" "bad_pairs.txt" "$bin/arcnet-test" --config "$config" --data.root data \
  --checkpoint full/latest.safetensors --pairs bad_pairs.txt
[[ "$(sha256sum full/*.safetensors)" == "$sum" ]] || fail "a checkpoint was overwritten by a failing run"
[[ ! -e fresh/latest.safetensors ]] || fail "a failing run wrote a checkpoint"
echo "PASS"
