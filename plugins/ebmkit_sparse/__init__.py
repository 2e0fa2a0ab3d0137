"""Built-in plugin ebmkit_sparse (in progress)."""
