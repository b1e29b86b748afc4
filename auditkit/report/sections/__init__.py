"""One builder per report section: each returns that section's part of the context dict."""
