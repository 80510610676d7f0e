"""The sending engine: claim due steps, pace, send exactly once, reconcile, read replies."""
