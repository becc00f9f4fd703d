#!/usr/bin/env bash
# The one-shot GPU check on a bare GPU machine (docs/gpu_check.md): reassemble the bundle
# that benchmarks/gpu_bundle.py cut into parts (the wheels installed into site/, and the
# real tiny.en), put site/ before the machine's own packages, and run
# benchmarks/gpu_check.py. Extra arguments go to gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=/tmp/scribe-gpu-bundle
parts=${SCRIBE_GPU_PARTS:-.gpu/parts}  # .gpu/lite: the wheels alone, one call (no tiny.en)
manifest=$(ls $parts/part-*/manifest.json 2>/dev/null | head -1 || true)
if [ -z "$manifest" ]; then
  echo "no bundle under .gpu/parts: run python benchmarks/gpu_bundle.py first" >&2; exit 2
fi
want=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['parts'])" "$manifest")
have=$(ls $parts/part-*/bundle.tar.xz.* | wc -l)
if [ "$have" -ne "$want" ]; then
  echo "only $have of $want bundle parts here: each device call carries one part, and the" \
       "machine keeps earlier ones only while it stays warm; carry them again back to back" >&2
  exit 3
fi
rm -rf "$bundle" && mkdir -p "$bundle"
cat $parts/part-*/bundle.tar.xz.* > "$bundle/bundle.tar.xz"
python3 - "$manifest" "$bundle" <<'PY'
import hashlib, json, sys, tarfile
manifest, bundle = json.load(open(sys.argv[1])), sys.argv[2]
whole = f"{bundle}/bundle.tar.xz"
got = hashlib.sha256(open(whole, "rb").read()).hexdigest()
if got != manifest["sha256"]:
    sys.exit(f"bundle checksum mismatch: {got} != {manifest['sha256']}")
with tarfile.open(whole, "r:xz") as tar:
    tar.extractall(bundle, filter="data")
PY
rm "$bundle/bundle.tar.xz"
export PYTHONPATH="$bundle/site:$PWD" PYTHONUNBUFFERED=1
words=()
[ -d "$bundle/tiny.en" ] && words=(--words-model "$bundle/tiny.en")
exec python3 benchmarks/gpu_check.py "${words[@]}" \
  --out "${OUT:-build}/gpu_check.json" "$@"
