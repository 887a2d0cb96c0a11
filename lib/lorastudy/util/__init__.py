"""What every stage uses and that knows nothing of a study: writing files whole, registries."""
