"""gsplat 3D Gaussian Splatting trainer for SageMaker (see docs/training.md)."""

__version__ = "0.1.0"
GSPLAT_VERSION = "1.5.3"
