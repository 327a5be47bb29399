"""The scoring program: files -> per-frame records -> totals -> scores -> score files and report.

groundtruth and results_format find and check the files (evaluation.plan_evaluation raises every file
problem first), frame_evaluation turns one frame into records, metrics/ combines and summarizes them,
score_files and report_html write what the platform shows; submission_rules and submission_ledger
apply the phases' limits. Never imports ingestion/, TensorFlow or the synthetic data."""
