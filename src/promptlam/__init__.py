"""promptlam: latent action models whose forward model predicts promptable VLM representations.

A reproduction of "Vision-Language Models Unlock Task-Centric Latent Actions" (arXiv 2601.22714).
Every stage is a module with a thin CLI entry point (``python -m promptlam --help``) that the
Snakemake rules call and that also runs standalone.
"""

__version__ = "0.1.0"
