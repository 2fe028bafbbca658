"""host waiting: why a held host sends nothing for now (proxies cooling down, Retry-After,
Crawl-delay), shown in the progress of the jobs with URLs there

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("hosts", sa.Column("waiting", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("waiting")
