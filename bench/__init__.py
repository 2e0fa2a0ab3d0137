"""ebmkit's benchmarks: each times ebmkit beside its nearest outside reference, in one process.

``python -m bench`` runs them all and rewrites ``docs/benchmarks.md``; ``--smoke`` runs each
briefly (CI) and writes nothing. Time benchmarks alone on the machine: two busy torch
processes on two cores slow each other many-fold.
"""
