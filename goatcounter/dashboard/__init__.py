"""The HTML pages: sign-in, the dashboard and (later) settings, from Jinja templates with
one stylesheet and one script of our own."""
