"""Tools around the study, not stages of it: lrstudy-bench (benchmark.py)."""
