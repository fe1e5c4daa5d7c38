"""The Textual operator console over the engine (the only package that imports textual)."""
