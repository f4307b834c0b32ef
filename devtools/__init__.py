"""Developer tools for a jobq checkout: the dashboard's seeded showcase data and its screenshot
scenes. Not shipped in the wheel (which holds `jobq` and `tui` only); the tests import it."""
