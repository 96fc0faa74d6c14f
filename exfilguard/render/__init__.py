"""Outputs: text, JSON, SARIF, the HTML report, Azure Policy exports and the rules page.

Pure renderers over the core's findings; they import only the core."""
