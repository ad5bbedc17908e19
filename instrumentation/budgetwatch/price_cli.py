"""The price table's part of the `budgetwatch` command (kept apart from cli.py).

- `budgetwatch validate FILE` accepts a price table (`kind: PriceTable`) as well as limits;
- `budgetwatch render LIMITS --output DIR --prices PRICES` also writes the collector's
  pricing statements to DIR/collector/pricing.yaml (or `--collector-dir`);
- `budgetwatch prices-from-litellm MODEL...` prints price table entries taken from the price
  map of the installed LiteLLM, to keep the table current.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

COLLECTOR_KIND = "collector"
COLLECTOR_SUFFIXES = (".yaml",)


def is_price_table(path: str) -> bool:
    from budgetwatch.limits import LimitsError, read_limits_text
    from budgetwatch.prices import is_price_table as says_price_table

    try:
        return says_price_table(read_limits_text(path))
    except LimitsError:
        return False  # the limits loader reports it


def validate(path: str) -> bool:
    """Print the verdict on one price table; True when it is valid."""
    from budgetwatch.limits import LimitsError
    from budgetwatch.prices import load_prices

    try:
        table = load_prices(path)
    except LimitsError as err:
        print(err, file=sys.stderr)
        return False
    now = datetime.now(UTC)
    models = {(p.provider, p.model) for p in table.prices}
    in_force = sum(1 for provider, model in models if table.price_at(provider, model, now))
    print(
        f"{path}: valid {table.api_version} {table.kind}: currency {table.currency}, "
        f"{len(table.prices)} prices for {len(models)} models, {in_force} in force now"
    )
    return True


def rendered(prices_path: str) -> dict[str, str]:
    """{"pricing.yaml": text} for `render --prices`; LimitsError when the table is bad."""
    from pathlib import PurePath

    from budgetwatch.prices import RENDERED_NAME, load_prices, render_pricing

    return {RENDERED_NAME: render_pricing(load_prices(prices_path), PurePath(prices_path).name)}


def add_render_arguments(render: argparse.ArgumentParser) -> None:
    render.add_argument(
        "--prices",
        metavar="PRICES",
        help="also render this price table into the collector's pricing statements",
    )
    render.add_argument(
        "--collector-dir",
        metavar="DIR",
        help="the pricing statements here instead of DIR/collector",
    )


def cmd_prices_from_litellm(args: argparse.Namespace) -> int:
    from budgetwatch.prices import plain_decimal

    try:
        import litellm
    except ImportError:
        print(
            "prices-from-litellm needs LiteLLM: pip install 'budgetwatch[litellm]'", file=sys.stderr
        )
        return 2
    cost_map: dict[str, Any] = litellm.model_cost
    today = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
    missing = 0
    for name in args.models:
        entry = cost_map.get(name) or cost_map.get(name.split("/", 1)[-1])
        if not entry or entry.get("input_cost_per_token") is None:
            print(f"# {name}: not in LiteLLM's price map", file=sys.stderr)
            missing += 1
            continue
        provider = entry.get("litellm_provider", "_unknown")
        model = name.split("/", 1)[1] if name.startswith(f"{provider}/") else name
        # plain decimals: YAML 1.1 reads 6e-07 (no dot) as a string
        print(
            f"  - {{provider: {provider}, model: {model}, "
            f"input: {plain_decimal(float(entry['input_cost_per_token']))}, "
            f"output: {plain_decimal(float(entry.get('output_cost_per_token') or 0))}, "
            f"effective_from: {today}}}"
        )
    return 2 if missing else 0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "prices-from-litellm",
        help="print price table entries from the installed LiteLLM's price map",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL")
    parser.set_defaults(func=cmd_prices_from_litellm)
