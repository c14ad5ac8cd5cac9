"""mepkg: micro-expression spotting and recognition in long videos.

Implements "Boosting Micro-Expression Analysis via Prior-Guided Video-Level
Regression" (ACM MM 2025) as a package: dataset adapters, a synthetic ME
benchmark, landmarks and ROI optical-flow features, the slow-fast Mamba model,
prior-guided decoding and the STRS metric. The Snakemake workflow around it
lives in the repository root.
"""

__version__ = "0.1.0"
