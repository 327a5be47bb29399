"""What every part of the competition uses: errors and messages, atomic writes, Cityscapes names and
labels, the settings (challenge.yaml), and reading untrusted files and YAML safely. Imports nothing
else of the package."""
