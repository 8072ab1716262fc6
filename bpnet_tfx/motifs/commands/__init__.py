"""One absl main per motifs command (python -m bpnet_tfx.motifs COMMAND)."""
