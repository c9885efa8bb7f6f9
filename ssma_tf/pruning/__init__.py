"""Shortcut-invariant network pruning of AdapNet++ and SSMA (Valada et al. 2019, Section 3.5).

`channels` lists the prunable feature maps of a model, `ranking` scores them (Taylor, ℓ1),
`surgery` builds the smaller network, and `staged` runs the staged protocol (rank, prune,
fine-tune, evaluate) behind `ssma-prune` (docs/pruning.md).
"""
