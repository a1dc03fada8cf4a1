"""faceprior: a Lightning + Hydra platform for blind face restoration."""

__version__ = "0.1.0"
