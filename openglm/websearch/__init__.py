"""Web search as Zhipu's API offers it: ``POST /web_search``, ``POST /tools`` (web-search-pro), and the chat
``web_search`` tool that grounds an answer in search results. All three search with the web browser tool's
provider (``agent/browser/search.py``: a SearxNG instance or the local index of configured sites) and open pages
through its SSRF-safe fetcher."""
