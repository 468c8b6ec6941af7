"""robust-mmr-pipeline: robust multi-modal masked reconstruction pre-training for medical VLMs."""

__version__ = "0.1.0"
