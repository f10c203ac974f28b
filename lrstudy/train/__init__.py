"""Stage 2 (rule train, and lrstudy-train outside the workflow): one seeded run of ResNet18 from the
dataset cache to metrics.csv, summary.json and model.pt. The recipe's loop is train/loop.py (the lr
schedule: lrstudy/schedule.py); a batch's steps train/steps.py; the run around the loop (resume,
checkpoints, divergence) train/engine.py; the device train/device.py; a whole run with its files, lock
and provenance train/run.py."""
