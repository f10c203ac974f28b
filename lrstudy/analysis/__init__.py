"""Stage 3 (rules aggregate, figures, report, and the adaptive design's plan_stage): runs -> tables,
statistics, figures and report.html. Reads only the runs' files; never imports torch."""
