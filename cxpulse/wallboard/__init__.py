"""The live wallboard: an aiohttp server reading the Redis read model, and a static page (no build step)."""
