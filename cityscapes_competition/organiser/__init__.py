"""The organiser's tools: competition data (from a Cityscapes download or synthetic scenes) -> each
platform's competition.yaml (codalab, codabench: the platform's rules, document and check; platforms: what
they share) and pages -> the two bundles (bundle)."""
