"""The JSON API (/api/v0): one blueprint module per area. Views parse, call, and render."""
