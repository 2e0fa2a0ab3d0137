"""Built-in plugin ``ebmkit_worldmodels`` (being written: registers nothing yet)."""
