"""The price table (`otel-collector/prices.yaml`) and the collector statements it renders to.

Sources that report tokens but no cost (`gen_ai.client.token.usage` alone, as the OTel GenAI
conventions and Grafana's agent SDK do) are priced in the collector: the token counts are
turned into deltas there, each delta is multiplied by the price in force at the delta's own
time, and the priced deltas are accumulated back into the cumulative `<ns>.cost` counter the
rules read. So a price change applies from its `effective_from` on and never to tokens counted
before it, and the recording rules' window math reads a cost counter like any other
(docs/prices.md says why the pricing is not done in the rules).

    apiVersion: budgetwatch/v1
    kind: PriceTable
    currency: USD
    prices:
      - provider: openai
        model: gpt-4o-mini
        input: 0.00000015        # per input token, in the currency
        output: 0.0000006        # per output token
        effective_from: 2024-07-18T00:00:00Z

Several entries for one provider and model are successive prices: each applies from its
`effective_from` until the next one's. Errors name the file, the field path and the problem
(`LimitsError`, the same error type as the limits file).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from .limits import (
    API_VERSION,
    SUPPORTED_API_VERSIONS,
    LimitsError,
    _Model,
    _problem_text,
    format_path,
    read_limits_text,
)
from .limits_values import _finite_number, _parse_effective_from
from .limits_yaml import _compose

KIND = "PriceTable"
RENDERED_NAME = "pricing.yaml"
# The metric names sources.yaml gives the token deltas to price and the calls to classify.
TOKENS_TO_PRICE = "gen_ai.client.token.usage.budgetwatch.to_price"
CALLS_TO_PRICE = "gen_ai.client.token.usage.budgetwatch.calls_to_price"
_MAX_TEXT = 128


class Price(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1, max_length=_MAX_TEXT)
    model: str = Field(min_length=1, max_length=_MAX_TEXT)
    input: float
    output: float
    effective_from: datetime

    @field_validator("input", "output", mode="before")
    @classmethod
    def _price(cls, value: Any) -> float:
        number = _finite_number(value, "must be a price per token (a number)")
        if number < 0:
            raise ValueError(f"must be 0 or more, got {value}")
        return number

    @field_validator("effective_from", mode="before")
    @classmethod
    def _from(cls, value: Any) -> datetime:
        return _parse_effective_from(value)

    @field_validator("provider", "model")
    @classmethod
    def _printable(cls, value: str) -> str:
        if value != value.strip() or not value.isprintable() or '"' in value or "\\" in value:
            raise ValueError("must be printable, without quotes, backslashes or outer blanks")
        return value


class PriceTable(_Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    api_version: str = Field(alias="apiVersion")
    kind: str
    currency: str = "USD"
    prices: list[Price] = Field(min_length=1)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value != KIND:
            raise ValueError(f"must be {KIND}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _unique(self) -> PriceTable:
        seen: set[tuple[str, str, datetime]] = set()
        for index, price in enumerate(self.prices):
            key = (price.provider, price.model, price.effective_from)
            if key in seen:
                raise ValueError(
                    f"prices[{index}]: a second price for {price.provider}/{price.model} "
                    f"from the same effective_from"
                )
            seen.add(key)
        return self

    def windows(self) -> list[tuple[Price, datetime | None]]:
        """Every price with the time its successor takes over (None: still in force)."""
        by_model: dict[tuple[str, str], list[Price]] = defaultdict(list)
        for price in self.prices:
            by_model[(price.provider, price.model)].append(price)
        result: list[tuple[Price, datetime | None]] = []
        for key in sorted(by_model):
            ordered = sorted(by_model[key], key=lambda p: p.effective_from)
            for price, after in zip(ordered, [*ordered[1:], None], strict=True):
                result.append((price, after.effective_from if after else None))
        return result

    def price_at(self, provider: str, model: str, when: datetime) -> Price | None:
        """The price in force for `provider`/`model` at `when` (None: unpriced then)."""
        for price, until in self.windows():
            if (
                (price.provider, price.model) == (provider, model)
                and price.effective_from <= when
                and (until is None or when < until)
            ):
                return price
        return None


def parse_prices(text: str, source: str) -> PriceTable:
    data, _node = _compose(text, source)
    if not isinstance(data, dict):
        raise LimitsError(f"{source}: the top level must be a mapping (apiVersion, kind, prices)")
    if data.get("apiVersion") not in SUPPORTED_API_VERSIONS:
        raise LimitsError(
            f"{source}: apiVersion: unsupported or missing {data.get('apiVersion')!r} "
            f"(use apiVersion: {API_VERSION})"
        )
    try:
        return PriceTable.model_validate(data)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            path, message = _problem_text(error)
            problems.append(f"{source}: {format_path(path)}: {message}" if path else message)
        raise LimitsError("\n".join(problems), problems) from None


def load_prices(path: str | Path) -> PriceTable:
    return parse_prices(read_limits_text(path), str(path))


def is_price_table(text: str) -> bool:
    """True when a YAML document says `kind: PriceTable` (validate accepts both kinds)."""
    for line in text.splitlines():
        if line.strip().startswith("kind:"):
            return line.split(":", 1)[1].split("#")[0].strip().strip("'\"") == KIND
    return False


def plain_decimal(value: float) -> str:
    """A number as a plain decimal (no exponent): OTTL literals, YAML 1.1 floats."""
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else f"{text}.0"


def _nanos(when: datetime) -> int:
    return int(when.timestamp()) * 1_000_000_000


def render_pricing(table: PriceTable, source: str) -> str:
    """The collector config fragment `transform/genai_prices` for this price table."""
    statements: list[str] = []
    for price, until in table.windows():
        match = (
            f'datapoint.attributes["budgetwatch.provider"] == "{price.provider}" and '
            f'datapoint.attributes["budgetwatch.model"] == "{price.model}" and '
            f"datapoint.time_unix_nano >= {_nanos(price.effective_from)}"
        )
        if until is not None:
            match += f" and datapoint.time_unix_nano < {_nanos(until)}"
        unpriced = 'datapoint.attributes["budgetwatch.price"] == nil'
        for token_type, per_token in (("input", price.input), ("output", price.output)):
            cond = (
                f'metric.name == "{TOKENS_TO_PRICE}" and {match} and '
                f'datapoint.attributes["gen_ai.token.type"] == "{token_type}" and {unpriced}'
            )
            statements.append(
                f"set(datapoint.value_double, datapoint.value_double * {plain_decimal(per_token)}) "
                f"where {cond}"
            )
            statements.append(
                f'set(datapoint.attributes["budgetwatch.price"], {plain_decimal(per_token)}) '
                f"where {cond}"
            )
        statements.append(
            f'set(datapoint.attributes["budgetwatch.price"], 1.0) '
            f'where metric.name == "{CALLS_TO_PRICE}" and {match} and {unpriced}'
        )
    header = (
        f"# generated by budgetwatch from {source}: do not edit; run `make generate`.\n"
        "# The price table as collector statements (otel-collector/sources.yaml, step 5):\n"
        "# each token delta is multiplied by the price in force at the delta's own time;\n"
        "# a delta no entry matches stays unpriced (counted as unpriced calls, never cost 0).\n"
        f"# Currency: {table.currency}.\n"
    )
    import yaml

    body = {
        "processors": {
            "transform/genai_prices": {
                "error_mode": "ignore",
                "metric_statements": [{"context": "datapoint", "statements": statements}],
            }
        }
    }
    return header + yaml.safe_dump(body, sort_keys=False, width=100_000)
