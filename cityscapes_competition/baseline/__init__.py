"""The baseline: its Keras architecture (baseline_model) and the training pipeline that exports a
complete submission (training)."""
