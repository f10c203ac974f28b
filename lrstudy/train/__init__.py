"""Stage 2 (rule train, and lrstudy-train outside the workflow): one seeded run of ResNet18 from the
dataset cache to metrics.csv, summary.json and model.pt. The lr schedule is train/schedule.py; the training
loop train/engine.py; a whole run with its files, lock and provenance train/run.py."""
