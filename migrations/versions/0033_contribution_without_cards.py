"""case_contribution: a case's remembered contribution no longer holds its cards

The deadline sweep rewrote one remembered JSON map per card (8.5 s of a 200,000-card burst);
cards are now read from the case's events when its contribution is recomputed (rollup.py), so
the maps keep the case row's figures only. Upgrading strips the "yellow|…" and "red|…" keys;
downgrading puts them back from the card events (on the case's grid and the card's day in
Asia/Shanghai, as rollup.contribution counts them).

Revision ID: 0033
Revises: 0032
"""
from __future__ import annotations

from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None

HAS_CARDS = """(CAST(contrib AS text) LIKE '%"yellow|%' OR CAST(contrib AS text) LIKE '%"red|%')"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE case_contribution SET contrib = (SELECT CAST(coalesce(json_object_agg(key, value), "
                   "'{}') AS json) FROM json_each(case_contribution.contrib) "
                   f"WHERE split_part(key, '|', 1) NOT IN ('yellow', 'red')) WHERE {HAS_CARDS}")
    else:
        op.execute("UPDATE case_contribution SET contrib = (SELECT json_group_object(key, value) "
                   "FROM json_each(case_contribution.contrib) "
                   f"WHERE key NOT LIKE 'yellow|%' AND key NOT LIKE 'red|%') WHERE {HAS_CARDS}")


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    day = ("CAST(CAST((e.at AT TIME ZONE 'Asia/Shanghai') AS date) AS text)" if pg
           else "date(e.at, '+8 hours')")
    grid = "CAST(c.grid_id AS text)" if pg else "c.grid_id"
    cards = (f"SELECT e.case_id, (CASE e.action WHEN 'yellow_card' THEN 'yellow' ELSE 'red' END) || '|' || "
             f"{grid} || '|' || {day} AS k, COUNT(*) AS n FROM case_event e JOIN case_file c ON c.id = e.case_id "
             "WHERE e.action IN ('yellow_card', 'red_card') GROUP BY e.case_id, k")
    if pg:
        op.execute("UPDATE case_contribution AS cc SET contrib = CAST(CAST(cc.contrib AS jsonb) || per.m AS json) "
                   f"FROM (SELECT case_id, jsonb_object_agg(k, n) AS m FROM ({cards}) AS x GROUP BY case_id) AS per "
                   "WHERE cc.case_id = per.case_id")
    else:
        op.execute("UPDATE case_contribution SET contrib = json_patch(contrib, (SELECT json_group_object(k, n) "
                   f"FROM ({cards}) AS x WHERE x.case_id = case_contribution.case_id)) "
                   "WHERE case_id IN (SELECT case_id FROM case_event WHERE action IN ('yellow_card', 'red_card'))")
