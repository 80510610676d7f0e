"""Where the app's parts live, for the pieces that treat them differently."""

from __future__ import annotations

import re

API_PREFIX = "/api/v1"
# The CSV uploads (page and API): a larger body limit, and the page's CSRF token checked in
# the route (the API is CSRF-exempt anyway).
UPLOAD_PATHS = re.compile(r"^(/api/v1)?/campaigns/\d+/recipients/import$")
