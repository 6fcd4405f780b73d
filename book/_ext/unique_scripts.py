"""Sphinx extension: drop repeated ``<script>`` entries from every page.

sphinx-thebe registers its inline configuration once per Sphinx read pass, and a full Jupyter Book build
triggers two, so every page declared ``const THEBE_JS_URL`` twice and the browser raised a SyntaxError
(found by tools/browser_check.py). Identical entries are kept once, in their first position.
"""

from __future__ import annotations


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    seen = set()
    unique = []
    for script in context.get("script_files", []):
        key = (getattr(script, "filename", None) or "", tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
