"""host leases, host policies, workers, fencing tokens and the cross-worker page count

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=True),
        sa.Column("token", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("expires_at", sa.Float(), nullable=False, server_default="0"),
        sa.Column("not_before", sa.Float(), nullable=False, server_default="0"),
        sa.Column("max_rps", sa.Float(), nullable=True),
        sa.Column("concurrency", sa.Integer(), nullable=True),
        sa.Column("blocked", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("policy_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("host"),
    )
    op.create_index("ix_hosts_holder", "hosts", ["holder"])
    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("alive_until", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("frontier", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host", sa.String(length=255), nullable=True))
    op.execute("UPDATE frontier SET host = domain")
    with op.batch_alter_table("frontier", schema=None) as batch_op:
        batch_op.alter_column("host", existing_type=sa.String(length=255), nullable=False)
        batch_op.create_index("ix_frontier_host", ["host", "state", "job_id"], unique=False)
    op.execute(
        "INSERT INTO hosts (host, token, expires_at, blocked) "
        "SELECT DISTINCT host, 0, 0, false FROM frontier"
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("lease_until", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("admitted", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE jobs SET admitted = (SELECT count(*) FROM frontier WHERE frontier.job_id = jobs.id)"
    )
    with op.batch_alter_table("dataset_leases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("dataset_leases", schema=None) as batch_op:
        batch_op.drop_column("token")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("admitted")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("token")
    with op.batch_alter_table("frontier", schema=None) as batch_op:
        batch_op.drop_index("ix_frontier_host")
        batch_op.drop_column("host")
    op.drop_table("workers")
    op.drop_index("ix_hosts_holder", "hosts")
    op.drop_table("hosts")
