#!/usr/bin/env bash
# The demo side by side with PyTorch on the same machine and the same wall-clock budget:
# arcnet-train runs examples/configs/fashion-mnist.cfg (then arcnet-test evaluates it), and
# fashion_mnist_torch.py trains the same architecture with the same recipe in Debian's PyTorch
# for as many training seconds as arcnet took, then evaluates the same way. Prints img/s and
# Recall@1 of both, and the ratios.
#   compare.sh BUILD_DIR [THREADS] [DEMO_WORK_DIR]
# BUILD_DIR holds examples/arcnet-train and arcnet-test. DEMO_WORK_DIR: the work dir of a finished
# scripts/run_demo.sh (BUILD_DIR/demo/fashion-mnist, with metrics.json): reuse that run instead
# of training again.
set -euo pipefail
build=$(cd "$1" && pwd)
threads=${2:-2}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
config="$here/../../examples/configs/fashion-mnist.cfg"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ -n "${3:-}" ]]; then
  run=$3
else
  run=$tmp/run
  "$build/examples/arcnet-train" --config "$config" --work-dir "$run" --threads "$threads" > "$tmp/train.log"
  "$build/examples/arcnet-test" --config "$config" --checkpoint "$run/latest.safetensors" --threads "$threads" \
    --out "$run/metrics.json" > "$tmp/test.log"
fi
read -r seconds images < <(/usr/bin/python3 - "$run/log.jsonl" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ep = [r for r in recs if r.get("mode") == "epoch"]
print(sum(r["train_seconds"] for r in ep), sum(r["images"] for r in ep))
PY
)
recall=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['recall@1'])" "$run/metrics.json")
arcnet_rate=$(/usr/bin/python3 -c "print(round($images / $seconds, 1))")
echo "arcnet train_s=$seconds images=$images img_s=$arcnet_rate recall@1=$recall"
torch_line=$(/usr/bin/python3 "$here/fashion_mnist_torch.py" --budget "$seconds" --threads "$threads")
echo "$torch_line"
torch_rate=$(echo "$torch_line" | sed -n 's/.*img_s=\([0-9.]*\).*/\1/p')
torch_recall=$(echo "$torch_line" | sed -n 's/.*recall@1=\([0-9.]*\).*/\1/p')
/usr/bin/python3 -c "
print('img/s  arcnet / pytorch = %.2f' % ($arcnet_rate / $torch_rate))
print('Recall@1 at equal time: arcnet %.2f, pytorch %.2f (difference %+.2f points)' % ($recall, $torch_recall, $recall - $torch_recall))"
