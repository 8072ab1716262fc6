"""What the inference jobs share: the RunInference model handler over an export, and the
publishing of prefix outputs."""
