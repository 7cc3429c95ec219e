"""Local-only tooling: embedded database, gateway, CLI, emulators. Never deployed."""
