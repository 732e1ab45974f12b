#!/usr/bin/env python3
"""SageMaker entry point of the gsplat 3DGS training image.

    python3 train_gaussian_production.py [train] [--set KEY=VALUE ...] [--preflight-only [--gpu-only]]

SageMaker runs `docker run IMAGE train`; the exec-form ENTRYPOINT passes `train` here, where
it is accepted and ignored. All the work is in splat_trainer.main; this file only makes the
package importable from /opt/ml/code and exits with the job's code.
"""

import sys
from pathlib import Path

# The package sits next to this script in the image (/opt/ml/code) and in the repository.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from splat_trainer.main import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    main()
