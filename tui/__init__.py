"""The jobq dashboard (`jobq tui`): a Textual app and a client of jobq's public API only."""
