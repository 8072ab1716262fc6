"""The Keras BPNet: config, body, heads, layers and losses."""
