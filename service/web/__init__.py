"""The web layer: the aiohttp application, routes, request and response schemas, the dashboard."""
