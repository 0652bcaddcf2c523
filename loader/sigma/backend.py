"""A pySigma backend whose queries are Spark SQL conditions over the `cloudtrail` view.

pySigma parses the rule, applies modifiers and the field-mapping pipeline
(:mod:`loader.sigma.pipeline`) and walks the condition; this class only says how each node is
written in Spark SQL, with Sigma's semantics:

- strings compare case-insensitively (``lower(x) = 'v'``), unless ``|cased``; ``*`` and ``?``
  are wildcards (``LIKE``, with ``%``, ``_`` and ``\\`` in the value escaped);
- ``|re`` is a Java regular expression (``RLIKE``), case-sensitive unless ``|i``;
- a field with several values (an array in the event) matches when any value does
  (``exists(values, x -> ...)``);
- ``null`` matches an absent field; ``|exists`` tests presence;
- ``not`` is NULL-safe: SQL's ``NOT x = 'y'`` is NULL, not TRUE, where x is NULL, which Sigma
  counts as a match, so every negated part is ``NOT coalesce(part, false)``. Parts that are
  not negated need no such care: an AND/OR of parts is TRUE in SQL's three-valued logic
  exactly where it is TRUE with every NULL read as FALSE.

Imports pySigma at module level: only :mod:`loader.sigma.convert` loads it, on demand.
"""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.conversion.base import Backend
from sigma.conversion.state import ConversionState
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError, SigmaValueError
from sigma.types import (
    CompareOperators,
    SigmaCasedString,
    SigmaRegularExpressionFlag,
    SigmaString,
    TimestampPart,
)

from loader.sigma.fields import Field, UnknownField, resolve
from loader.sigma.patterns import (
    as_text,
    each,
    escape_like,
    folded,
    ipv4_in,
    like_pattern,
    plain,
    regex_text,
    required_literal,
)
from loader.sql import sql_string

# A keyword (a value without a field) is searched in the whole event's JSON text
KEYWORD_FIELD = "raw_json"
_OPERATORS = {
    CompareOperators.LT: "<",
    CompareOperators.LTE: "<=",
    CompareOperators.GT: ">",
    CompareOperators.GTE: ">=",
}
_PARTS = {
    TimestampPart.MINUTE: "minute",
    TimestampPart.HOUR: "hour",
    TimestampPart.DAY: "day",
    TimestampPart.WEEK: "weekofyear",
    TimestampPart.MONTH: "month",
    TimestampPart.YEAR: "year",
}
# one level of JSON string escaping (\" \\ \/) removed, as an SQL literal
_UNESCAPE = sql_string(r'\\(["\\/])')


class SparkSQLBackend(Backend):
    """Sigma conditions as Spark SQL boolean expressions over the `cloudtrail` view."""

    name: ClassVar[str] = "timely-security-analytics Spark SQL"
    formats: ClassVar[dict[str, str]] = {"default": "a Spark SQL WHERE condition"}
    requires_pipeline: ClassVar[bool] = True
    convert_or_as_in: ClassVar[bool] = True  # eventName IN (...) lets the engine prefilter

    # --- boolean structure ------------------------------------------------------------------

    def convert_condition_or(self, cond: ConditionOR, state: ConversionState) -> Any:
        parts = self._flat(cond, ConditionOR, state)
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def convert_condition_and(self, cond: ConditionAND, state: ConversionState) -> Any:
        parts = self._flat(cond, ConditionAND, state)
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def _flat(self, cond: Any, kind: type, state: ConversionState) -> list[str]:
        """The parts of an AND (OR), those of a nested AND (OR) among them spliced in:
        ``a AND b AND c``, not ``(a AND b) AND c``."""
        parts = []
        for arg in cond.args:
            if isinstance(arg, kind) and not self.decide_convert_condition_as_in_expression(
                arg, state
            ):
                parts += self._flat(arg, kind, state)
            else:
                parts.append(self._part(arg, state))
        return parts

    def convert_condition_not(self, cond: ConditionNOT, state: ConversionState) -> Any:
        inner = self._part(cond.args[0], state)
        return f"NOT coalesce({inner}, false)"

    def _part(self, arg: Any, state: ConversionState) -> str:
        return str(self.convert_condition(arg, state))

    def convert_condition_as_in_expression(
        self, cond: ConditionOR | ConditionAND, state: ConversionState
    ) -> Any:
        if isinstance(cond, ConditionAND) or any(
            isinstance(arg.value, SigmaCasedString) for arg in cond.args
        ):
            return self.convert_condition_or(cond, state)  # type: ignore[arg-type]
        field = self._field(cond.args[0].field)
        if field.text:
            return self.convert_condition_or(cond, state)  # type: ignore[arg-type]
        values = sorted({plain(arg.value) for arg in cond.args})
        listed = ", ".join(sql_string(v) for v in values)
        if len(values) == 1:
            return each(field, lambda x: f"{folded(x, field)} = {listed}")
        return each(field, lambda x: f"{folded(x, field)} IN ({listed})")

    # --- field = value ----------------------------------------------------------------------

    def convert_condition_field_eq_val_str(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        return self._string(self._field(cond.field), cond.value, fold=True)

    def convert_condition_field_eq_val_str_case_sensitive(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        return self._string(self._field(cond.field), cond.value, fold=False)

    def _string(self, field: Field, value: SigmaString, fold: bool) -> str:
        pattern, wild = like_pattern(value, fold)
        operator = "LIKE" if wild else "="

        def test(x: str) -> str:
            subject = folded(x, field) if fold else as_text(x, field)
            return f"{subject} {operator} {sql_string(pattern)}"

        if field.text and wild:
            # A JSON document nested in the column (a policy) is a string there, its quotes
            # escaped: the text is also matched with one level of escaping removed.
            unescaped = f"regexp_replace({field.scalar}, {_UNESCAPE}, '$1')"
            return f"({test(str(field.scalar))} OR {test(unescaped)})"
        return each(field, test)

    def convert_condition_field_eq_val_num(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        field = self._field(cond.field)
        number = cond.value.number
        if field.kind in ("int", "bigint", "double", "float", "long"):
            return each(field, lambda x: f"{x} = {number}")
        return each(field, lambda x: f"{as_text(x, field)} = {sql_string(str(number))}")

    def convert_condition_field_eq_val_bool(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        field = self._field(cond.field)
        word = "true" if cond.value.boolean else "false"
        if field.kind == "boolean":
            return each(field, lambda x: f"{x} = {word}")
        return each(field, lambda x: f"lower({as_text(x, field)}) = '{word}'")

    def convert_condition_field_eq_val_re(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        field = self._field(cond.field)
        regex = regex_text(cond.value)
        literal = required_literal(cond.value.regexp.original)
        if literal is None:
            return each(field, lambda x: f"{as_text(x, field)} RLIKE {regex}")
        # A test for text every match contains first: over 1M events, '.+:assumed-role/aws:.+'
        # (a leading .+ is tried from every position) took 8.4 s, contains() 0.9 s.
        fold = SigmaRegularExpressionFlag.IGNORECASE in cond.value.flags
        literal = literal.lower() if fold else literal

        def test(x: str) -> str:
            text = folded(x, field) if fold else as_text(x, field)
            return (
                f"(contains({text}, {sql_string(literal)}) AND {as_text(x, field)} RLIKE {regex})"
            )

        return each(field, test)

    def convert_condition_field_eq_val_cidr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        field = self._field(cond.field)
        network = cond.value.network
        if isinstance(network, ipaddress.IPv4Network):
            return each(field, lambda x: ipv4_in(as_text(x, field), network))
        prefixes = cond.value.expand(wildcard="*")  # IPv6: prefixes of the written form
        tests = [escape_like(prefix.lower()).replace("*", "%") for prefix in prefixes]
        return each(
            field,
            lambda x: "(" + " OR ".join(f"lower({as_text(x, field)}) LIKE {sql_string(t)}"
                                        for t in tests) + ")",
        )  # fmt: skip

    def convert_condition_field_compare_op_val(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        field = self._field(cond.field)
        operator, number = _OPERATORS[cond.value.op], cond.value.number.number
        return each(field, lambda x: f"try_cast({x} AS DOUBLE) {operator} {number}")

    def convert_condition_field_eq_val_timestamp_part(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        field = self._field(cond.field)
        part = _PARTS[cond.value.timestamp_part]
        return each(field, lambda x: f"{part}(try_cast({x} AS TIMESTAMP)) = {cond.value.number}")

    def convert_condition_field_eq_field(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        left, ref = self._field(cond.field), cond.value
        right = self._field(ref.field)

        def test(a: str, b: str) -> str:
            a, b = folded(a, left), folded(b, right)
            if ref.starts_with and ref.ends_with:
                return f"contains({a}, {b})"
            if ref.starts_with:
                return f"startswith({a}, {b})"
            if ref.ends_with:
                return f"endswith({a}, {b})"
            return f"{a} = {b}"

        return each(left, lambda a: each(right, lambda b: test(a, b), "y"))

    def convert_condition_field_eq_val_null(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        return self.convert_condition_field_not_exists(cond, state)

    def convert_condition_field_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        return self._present(self._field(cond.field))

    def convert_condition_field_not_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        return f"NOT {self._present(self._field(cond.field))}"

    def _present(self, field: Field) -> str:
        if field.values is not None:
            return f"coalesce(exists({field.values}, x -> x IS NOT NULL), false)"
        return f"({field.scalar} IS NOT NULL)"

    def _no_query_expression(self, cond: Any, state: ConversionState) -> Any:
        raise SigmaFeatureNotSupportedByBackendError(
            "query expressions (placeholders left to the backend) are not supported",
            source=cond.source,
        )

    convert_condition_field_eq_query_expr = _no_query_expression
    convert_condition_query_expr = _no_query_expression

    # --- keywords: values without a field ---------------------------------------------------

    def convert_condition_val_str(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> Any:
        value = cond.value
        pattern, wild = like_pattern(value, fold=not isinstance(value, SigmaCasedString))
        pattern = pattern if wild else escape_like(pattern)
        pattern = f"%{pattern}%"  # a keyword is found anywhere in the event ("%%" is "%")
        subject = (
            KEYWORD_FIELD if isinstance(value, SigmaCasedString) else f"lower({KEYWORD_FIELD})"
        )
        return f"{subject} LIKE {sql_string(pattern)}"

    def convert_condition_val_num(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> Any:
        return f"{KEYWORD_FIELD} LIKE {sql_string('%' + str(cond.value.number) + '%')}"

    def convert_condition_val_re(
        self, cond: ConditionValueExpression, state: ConversionState
    ) -> Any:
        return f"{KEYWORD_FIELD} RLIKE {regex_text(cond.value)}"

    # --- whole rules -------------------------------------------------------------------------

    def condition_of(self, rule: Any) -> str:
        """The rule's condition(s) as one SQL expression (several conditions are ORed, as
        Sigma matches an event when any of them does), after the pipeline."""
        if getattr(self, "last_processing_pipeline", None) is None:
            self.init_processing_pipeline()
        self.last_processing_pipeline.apply(rule)
        parts = [
            str(self.convert_condition(cond.parsed, ConversionState()))
            for cond in rule.detection.parsed_condition
        ]
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    # Correlation rules become rule files with threshold/window (loader.sigma.convert); this
    # backend never renders them as queries.
    def _no_correlation_query(self, rule: Any, *_: Any) -> Any:
        raise SigmaFeatureNotSupportedByBackendError(
            f"{rule.type.name.lower()} correlations have no query form here", source=rule.source
        )

    convert_correlation_event_count_rule = _no_correlation_query
    convert_correlation_value_count_rule = _no_correlation_query
    convert_correlation_temporal_rule = _no_correlation_query
    convert_correlation_temporal_ordered_rule = _no_correlation_query
    convert_correlation_extended_temporal_rule = _no_correlation_query
    convert_correlation_extended_temporal_ordered_rule = _no_correlation_query
    convert_correlation_value_sum_rule = _no_correlation_query
    convert_correlation_value_avg_rule = _no_correlation_query
    convert_correlation_value_percentile_rule = _no_correlation_query
    convert_correlation_value_median_rule = _no_correlation_query

    # --- helpers ----------------------------------------------------------------------------

    def _field(self, name: str) -> Field:
        try:
            return resolve(name)
        except UnknownField as exc:
            raise SigmaValueError(str(exc)) from exc
