"""absl-flag binaries (`python -m experiments.<job>`) and what they share."""
