"""Exports and imports in GoatCounter's CSV format."""
