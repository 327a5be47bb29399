"""The organiser's tools: competition data (from a Cityscapes download or synthetic scenes) -> the
platforms' competition.yaml (platform_yaml: one rule set per platform) and pages -> the two bundles."""
