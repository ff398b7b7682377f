"""Blueprints: one module per API area. Views parse, call the model, and render."""
