"""The web app: plain HTML, CSS and native ES modules in ``static/`` (no build step, nothing fetched at run time),
served by the API server (``api/routes/web.py``) from memory, under a version derived from their contents."""
