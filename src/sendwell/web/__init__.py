"""Server-rendered pages: templates, static assets and the helpers every page uses."""
