"""Built-in plugin ``ebmkit_attention`` (being written: registers nothing yet)."""
