#!/bin/bash
# bench/gpu/pair30k.sh WHICH END TAG [extra bench/train_gpu.py arguments]
#
# One command's piece of a 30k-step T4-capped run on outdoor_grass_1mp, resumable across commands through
# /tmp/grass30k (bench/train_gpu.py --state-dir). END: the seconds from this script's start by which the
# command must be done (a lent GPU allows 600 s a command). A fresh machine generates the scene (about 150-210 s
# of GPU ray tracing) beside gsplat's JIT build. Run it again, back to back on the same warm machine, with
# --warmup-steps 0, until the JSON in $OUT says "complete": true. MARGIN (default 70 s) is kept for the
# warm-up, the checkpoint written when the time limit stops a trainer, and the summary.
# CAP (default --t4-cap; empty for the uncapped run) and STATE (default /tmp/grass30k; another folder for
# each cap setting, since --state-dir refuses a folder that holds a run with other settings).
T0=$(date +%s)
source bench/gpu/common.sh
WHICH=$1; END=$2; TAG=$3; shift 3
SCENE=/tmp/scene_grass1mp
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
if [ ! -f $SCENE/scene.json ]; then
  python3 bench/gpu/jit.py > $OUT/jit_$TAG.log 2>&1 &
  JIT=$!
  python3 - "$SCENE" <<'PY' 2>&1 | tee $OUT/gen_$TAG.log
import sys
from pathlib import Path
sys.path.insert(0, "bench")
import train_gpu as t
images, width, height, points, style, detail, foliage = t.PRESETS["outdoor_grass_1mp"]
t.ensure_scene(Path(sys.argv[1]), images, width, height, points, 0, "cuda", style, detail, foliage,
               t.PRESET_OPTIONS["outdoor_grass_1mp"], workers=1)
PY
  wait $JIT; cat $OUT/jit_$TAG.log
fi
EVAL=$(python3 -c "print(','.join(map(str, [*range(500, 10001, 500), *range(12000, 30001, 2000)])))")
NOW=$(date +%s); LIMIT=$((END - (NOW - T0) - ${MARGIN:-70}))
echo "elapsed $((NOW - T0)) s before training; --time-limit $LIMIT"
python3 bench/train_gpu.py --preset outdoor_grass_1mp --scene-dir $SCENE --steps 30000 --eval-at $EVAL \
  --log-every 250 ${CAP---t4-cap} --which "$WHICH" --state-dir ${STATE:-/tmp/grass30k} --time-limit $LIMIT \
  --json $OUT/$TAG.json "$@" 2>&1 | tee $OUT/$TAG.log | grep -v "step=[0-9]*/[0-9]* loss"
echo "piece done at $(( $(date +%s) - T0 )) s"; du -sh ${STATE:-/tmp/grass30k} 2>/dev/null
