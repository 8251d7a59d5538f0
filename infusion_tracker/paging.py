"""A page of rows from a statement built once: flask_sqlalchemy's Pagination (what the
templates read: items, total, pages, has_next …), fetched and counted with prepared
statements and the values as parameters. db.paginate builds a LIMIT/OFFSET statement and a
count statement around the query on every request, and SQLAlchemy then derives both cache
keys afresh: on the patient search that was as much work as running them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_sqlalchemy.pagination import Pagination

from .extensions import db

LIMIT = sa.bindparam("page_limit", type_=sa.Integer)
OFFSET = sa.bindparam("page_offset", type_=sa.Integer)
CAP = sa.bindparam("count_cap", type_=sa.Integer)


def prepared(statement: sa.Select, capped: bool = False) -> tuple[sa.Select, sa.Select]:
    """(one page of `statement`, the count of all its rows): build them once, at import or
    in a cache, and pass them to paginate(). `capped`: the count stops at the `count_cap`
    parameter (counting millions of rows takes seconds)."""
    counted = statement.order_by(None)
    if capped:
        # The FROM kept as it was: a statement without a WHERE would otherwise lose its table
        # with its columns and count one row.
        counted = counted.with_only_columns(
            sa.literal_column("1"), maintain_column_froms=True
        ).limit(CAP)
    count = sa.select(sa.func.count()).select_from(counted.subquery())
    return statement.limit(LIMIT).offset(OFFSET), count


class PreparedPagination(Pagination):
    def _query_items(self) -> list[Any]:
        params = {
            **self._query_args["params"],
            "page_limit": self.per_page,
            "page_offset": self._query_offset,
        }
        if self._query_args["as_rows"]:
            return list(db.session.execute(self._query_args["rows"], params))
        return list(db.session.scalars(self._query_args["rows"], params))

    def _query_count(self) -> int:
        return db.session.scalar(self._query_args["counted"], self._query_args["params"])

    @property
    def more(self) -> bool:
        """Counted up to paginate's `count_limit`, and there were more: `total` is the limit
        + 1, and the pager shows the page without the number of pages."""
        limit = self._query_args["count_limit"]
        return limit is not None and self.total > limit

    @property
    def next_shown(self) -> bool:
        """Whether the pager offers the next page (past a limited count: while pages are full)."""
        return self.has_next or (self.more and len(self.items) == self.per_page)


def paginate(
    rows: sa.Select,
    counted: sa.Select,
    params: dict[str, Any],
    page: int,
    per_page: int,
    *,
    as_rows: bool = False,
    count_limit: int | None = None,
) -> PreparedPagination:
    """Page `page` (from 1; past the last, no rows) of prepared() statements: its items the
    first column's values, or with `as_rows` the rows. `count_limit`: the count (of a
    prepared(capped=True) statement) stops past it, and `more` says so."""
    if count_limit is not None:
        params = {**params, "count_cap": count_limit + 1}
    return PreparedPagination(
        page=page,
        per_page=per_page,
        max_per_page=per_page,
        error_out=False,
        rows=rows,
        counted=counted,
        params=params,
        as_rows=as_rows,
        count_limit=count_limit,
    )
