"""Suite-wide settings."""

from __future__ import annotations

import os

# LiteLLM must use the price map it ships, never fetch one (the machines are offline).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
