"""Sphinx configuration of the safe_data documentation site.

The pages are the Markdown files of this directory (MyST); the API reference is read from
the docstrings (autodoc, numpydoc style through napoleon).  Build it strictly with
``scripts/build_docs.sh``: every warning is an error.
"""

import safe_data

project = "safe_data"
author = "safe_data developers"
copyright = "safe_data developers"
release = version = safe_data.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

# MyST: GitHub-style anchors, so that the pages' ``page.md#section`` links resolve here
# exactly as they do on GitHub
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

# autodoc and napoleon: numpy-style docstrings; members in the order of the source
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

html_theme = "furo"
html_title = f"safe_data {release}"
html_static_path = []


# Furo draws a `contents` directive as a red "ERROR" box (its own table of contents is in
# the sidebar) without any warning from Sphinx: warn here, so that the strict build fails.
_FURO_ESCAPE_HATCH = "this-will-duplicate-information-and-it-is-still-useful-here"


def _refuse_tables_of_contents(app, doctree, docname):
    from docutils import nodes
    from sphinx.util import logging

    for topic in doctree.findall(nodes.topic):
        if "contents" in topic["classes"] and _FURO_ESCAPE_HATCH not in topic["classes"]:
            logging.getLogger(__name__).warning(
                "a table of contents (the contents directive) shows as an ERROR box under "
                "Furo, which has one in its sidebar: remove the directive", location=topic)


def setup(app):
    app.connect("doctree-resolved", _refuse_tables_of_contents)
