"""What visitors' browsers reach without signing in: the /count pixel and count.js."""
