"""Built-in plugin ``ebmkit_masked`` (being written: registers nothing yet)."""
