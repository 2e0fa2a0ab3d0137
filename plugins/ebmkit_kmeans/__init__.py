"""Built-in plugin ebmkit_kmeans (in progress)."""
