"""Where the app's parts live, for the pieces that treat them differently."""

from __future__ import annotations

import re

API_PREFIX = "/api/v1"
# The CSV upload: a larger body limit, and its CSRF token checked in the route.
UPLOAD_PATHS = re.compile(r"^/campaigns/\d+/recipients/import$")
