"""Command handlers of the CLI, each registering its own flags, so `memabra/cli.py` stays a dispatcher."""
