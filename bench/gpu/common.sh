# Sourced by the lent-GPU scripts (bench/gpu/*.sh), run from the repository root on that machine.
# The machine has torch but no package registry: the packages it lacks travel as wheels in .gpu/whl
# (see bench/gpu/README.md). They are installed once per machine: reinstalling renews gsplat's sources'
# timestamps, and its JIT extension (70-90 s) is then rebuilt.
if [ ! -f /tmp/site/.installed ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl \
    >/dev/null 2>&1 || { echo "installing .gpu/whl/*.whl into /tmp/site failed"; exit 1; }
  touch /tmp/site/.installed
fi
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST="9.0" TORCH_EXTENSIONS_DIR=/tmp/torch_ext
