"""Incident responder for 3D Gaussian Splatting training pipelines on AWS."""

__version__ = "0.1.0"
