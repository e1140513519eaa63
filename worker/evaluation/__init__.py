"""How a model is measured: the leave-last-out protocol (holdout), Personalize's metrics, the
Recommender protocol every model is ranked through, and the baselines it is compared with.

Imports only worker.data: training measures every FULL model with it, and the evaluation
report and the benchmarks reuse it, so it must not depend on them."""
