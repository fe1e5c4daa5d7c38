"""memabra keeps an AI agent's router learning safely: train a challenger, gate it, promote it, roll it back."""

__version__ = "0.1.0"
