"""Web plumbing shared by the API, the public endpoints and the pages: error replies,
rate limits and trusted proxies."""
