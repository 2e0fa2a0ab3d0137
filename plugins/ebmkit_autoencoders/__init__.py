"""Built-in plugin ebmkit_autoencoders (in progress)."""
