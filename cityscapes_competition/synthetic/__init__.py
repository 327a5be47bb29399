"""Synthetic data in the Cityscapes formats, for running everything without the download: street
scenes with photos, labels, instances, disparity and camera files (scenes), and participant-like
results derived from them (results)."""
