"""Making a model: ABC tunes converted to tokens, the corpus built and checked, and training."""
