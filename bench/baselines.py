"""The classic baselines of bench/quality.py: the installed package's own
(worker/evaluation/baselines.py), which `streamrec evaluate` uses too, so the benchmark and the
report compare against the same models."""

from __future__ import annotations

from worker.evaluation.baselines import ALS, ItemKNN, MarkovChain, MostPopular

__all__ = ["ALS", "ItemKNN", "MarkovChain", "MostPopular"]
