"""The variants job's transforms and its RunInference model handler."""
