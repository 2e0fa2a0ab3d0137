"""Built-in plugin ``ebmkit_ssl`` (being written: registers nothing yet)."""
