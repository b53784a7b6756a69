"""The feedback routes' handlers: store users' ratings, and list a user's.

They exist only when ``WISATA_DATA`` is a database. A batch is checked whole before anything is
written: its shape by the request model, each rating against the scale of the served models'
data, each item against the catalogue (in the write's own transaction); the 201 comes after the
commit.
"""

from __future__ import annotations

from aiohttp import web

from service.db.ratings import NewRating
from service.web import parsing
from service.web.keys import FEEDBACK, REGISTRY
from service.web.responses import RATINGS_STORED, USER_RATINGS, RatingsStored, UserRatings
from service.web.schemas import FeedbackRequest
from service.web.views import respond

__all__ = ["add_ratings", "user_ratings"]


async def add_ratings(request: web.Request) -> web.Response:
    """Store a batch of ratings in one transaction; 201 with the count once committed."""
    registry = request.app[REGISTRY]
    asked = await parsing.body(request, FeedbackRequest, registry)
    parsing.check_scale(registry, (entry.rating for entry in asked.ratings))
    batch = [NewRating(entry.user_id, entry.item_id, entry.rating) for entry in asked.ratings]
    stored = await request.app[FEEDBACK].add(batch)
    written: RatingsStored = {"count": len(stored)}
    return respond(RATINGS_STORED.dump_json(written), status=201)


async def user_ratings(request: web.Request) -> web.Response:
    """A user's stored ratings, newest first."""
    user_id = request.match_info["user_id"]
    found = await request.app[FEEDBACK].store.for_user(user_id)
    listed: UserRatings = {
        "user_id": user_id,
        "ratings": [
            {"item_id": r.item_id, "rating": r.rating, "created_at": r.created_at} for r in found
        ],
    }
    return respond(USER_RATINGS.dump_json(listed))
