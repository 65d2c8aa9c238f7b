"""initial schema

Revision ID: 0001
Revises: 
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('admission',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=512), nullable=False),
    sa.Column('first_seen', sa.Float(), nullable=False),
    sa.Column('last_seen', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('attempt',
    sa.Column('frame_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('layer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('host_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('host_name', sa.String(length=256), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('slots', sa.Integer(), nullable=False),
    sa.Column('memory', sa.Integer(), nullable=False),
    sa.Column('gpus', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('stopped_at', sa.Float(), nullable=True),
    sa.Column('exit_status', sa.Integer(), nullable=True),
    sa.Column('rss', sa.BigInteger(), nullable=False),
    sa.Column('peak_rss', sa.BigInteger(), nullable=False),
    sa.Column('cpu_time', sa.Float(), nullable=False),
    sa.Column('reason', sa.String(length=1024), nullable=False),
    sa.PrimaryKeyConstraint('frame_id', 'number')
    )
    with op.batch_alter_table('attempt', schema=None) as batch_op:
        batch_op.create_index('ix_attempt_running_host', ['host_id'], unique=False, postgresql_where=sa.text("state = 'RUNNING'"), sqlite_where=sa.text("state = 'RUNNING'"))

    op.create_table('frame',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('layer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('frame_end', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=256), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('retries', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('deps_left', sa.Integer(), nullable=False),
    sa.Column('kill_pending', sa.String(length=16), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('frame', schema=None) as batch_op:
        batch_op.create_index('ix_frame_layer_idx', ['layer_id', 'idx'], unique=False)
        batch_op.create_index('ix_frame_waiting', ['layer_id', 'idx'], unique=False, postgresql_where=sa.text("state = 'WAITING'"), sqlite_where=sa.text("state = 'WAITING'"))

    op.create_table('frame_dep',
    sa.Column('frame_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('target_frame_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('frame_id', 'target_frame_id')
    )
    with op.batch_alter_table('frame_dep', schema=None) as batch_op:
        batch_op.create_index('ix_frame_dep_target', ['target_frame_id'], unique=False)

    op.create_table('host',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('hostname', sa.String(length=256), nullable=False),
    sa.Column('os', sa.String(length=32), nullable=False),
    sa.Column('cores', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('memory_free_mb', sa.Integer(), nullable=False),
    sa.Column('gpus', sa.Integer(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('tags_added', sa.JSON(), nullable=False),
    sa.Column('tags_removed', sa.JSON(), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('disk_free_mb', sa.Integer(), nullable=False),
    sa.Column('slots_override', sa.Integer(), nullable=True),
    sa.Column('lock_kind', sa.String(length=16), nullable=False),
    sa.Column('lock_slots', sa.Integer(), nullable=True),
    sa.Column('lock_override_until', sa.Float(), nullable=False),
    sa.Column('drain', sa.String(length=16), nullable=True),
    sa.Column('nimby', sa.Boolean(), nullable=False),
    sa.Column('draining', sa.Boolean(), nullable=False),
    sa.Column('slots_configured', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('lock', sa.String(length=16), nullable=False),
    sa.Column('load', sa.Float(), nullable=False),
    sa.Column('cpu_percent', sa.Float(), nullable=False),
    sa.Column('last_seen', sa.Float(), nullable=False),
    sa.Column('registered_at', sa.Float(), nullable=False),
    sa.Column('supervisor_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('limits',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('max', sa.Integer(), nullable=False),
    sa.Column('per_host', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('lock_schedule',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('target', sa.String(length=256), nullable=False),
    sa.Column('days', sa.JSON(), nullable=False),
    sa.Column('start', sa.String(length=5), nullable=False),
    sa.Column('end', sa.String(length=5), nullable=False),
    sa.Column('purge', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('path_map',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('os', sa.String(length=16), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=1024), nullable=False),
    sa.Column('target', sa.String(length=1024), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('project',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('guaranteed', sa.Integer(), nullable=False),
    sa.Column('max_slots', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('setting',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('job',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user', sa.String(length=128), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('killed', sa.Boolean(), nullable=False),
    sa.Column('min_slots', sa.Integer(), nullable=False),
    sa.Column('max_slots', sa.Integer(), nullable=True),
    sa.Column('flagged', sa.String(length=512), nullable=False),
    sa.Column('submitted_at', sa.Float(), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=True),
    sa.Column('finished_at', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index('ix_job_state_priority', ['state', 'priority'], unique=False)

    op.create_table('job_host',
    sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('host_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('banned_until', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'host_id')
    )
    op.create_table('layer',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('command', sa.JSON(), nullable=False),
    sa.Column('range', sa.String(length=1024), nullable=False),
    sa.Column('chunk', sa.Integer(), nullable=False),
    sa.Column('slots', sa.Integer(), nullable=False),
    sa.Column('slots_mode', sa.String(length=8), nullable=False),
    sa.Column('memory', sa.Integer(), nullable=False),
    sa.Column('gpus', sa.Integer(), nullable=False),
    sa.Column('max_retries', sa.Integer(), nullable=False),
    sa.Column('env', sa.JSON(), nullable=False),
    sa.Column('cwd', sa.String(length=4096), nullable=True),
    sa.Column('depends_on', sa.JSON(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('os', sa.String(length=16), nullable=True),
    sa.Column('hosts', sa.JSON(), nullable=False),
    sa.Column('omit_hosts', sa.JSON(), nullable=False),
    sa.Column('requirements', sa.String(length=2000), nullable=True),
    sa.Column('limits', sa.JSON(), nullable=False),
    sa.Column('timeout', sa.Integer(), nullable=False),
    sa.Column('timeout_no_output', sa.Integer(), nullable=False),
    sa.Column('deps_left', sa.Integer(), nullable=False),
    sa.Column('slots_running', sa.Integer(), nullable=False),
    sa.Column('frames_total', sa.Integer(), nullable=False),
    sa.Column('waiting', sa.Integer(), nullable=False),
    sa.Column('depend', sa.Integer(), nullable=False),
    sa.Column('running', sa.Integer(), nullable=False),
    sa.Column('succeeded', sa.Integer(), nullable=False),
    sa.Column('dead', sa.Integer(), nullable=False),
    sa.Column('eaten', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('layer', schema=None) as batch_op:
        batch_op.create_index('ix_layer_waiting', ['job_id'], unique=False, postgresql_where=sa.text('waiting > 0'), sqlite_where=sa.text('waiting > 0'))
        batch_op.create_index('ux_layer_job_name', ['job_id', 'name'], unique=True)

    op.create_table('dependency',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('layer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('target_job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('target_layer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('satisfied', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['layer_id'], ['layer.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_job_id'], ['job.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_layer_id'], ['layer.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dependency', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dependency_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dependency_layer_id'), ['layer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dependency_target_layer_id'), ['target_layer_id'], unique=False)

    op.create_table('layer_limit',
    sa.Column('layer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('limit_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['layer_id'], ['layer.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['limit_id'], ['limits.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('layer_id', 'limit_id')
    )
    with op.batch_alter_table('layer_limit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_layer_limit_limit_id'), ['limit_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('layer_limit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_layer_limit_limit_id'))

    op.drop_table('layer_limit')
    with op.batch_alter_table('dependency', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dependency_target_layer_id'))
        batch_op.drop_index(batch_op.f('ix_dependency_layer_id'))
        batch_op.drop_index(batch_op.f('ix_dependency_job_id'))

    op.drop_table('dependency')
    with op.batch_alter_table('layer', schema=None) as batch_op:
        batch_op.drop_index('ux_layer_job_name')
        batch_op.drop_index('ix_layer_waiting', postgresql_where=sa.text('waiting > 0'), sqlite_where=sa.text('waiting > 0'))

    op.drop_table('layer')
    op.drop_table('job_host')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index('ix_job_state_priority')

    op.drop_table('job')
    op.drop_table('setting')
    op.drop_table('project')
    op.drop_table('path_map')
    op.drop_table('lock_schedule')
    op.drop_table('limits')
    op.drop_table('host')
    with op.batch_alter_table('frame_dep', schema=None) as batch_op:
        batch_op.drop_index('ix_frame_dep_target')

    op.drop_table('frame_dep')
    with op.batch_alter_table('frame', schema=None) as batch_op:
        batch_op.drop_index('ix_frame_waiting', postgresql_where=sa.text("state = 'WAITING'"), sqlite_where=sa.text("state = 'WAITING'"))
        batch_op.drop_index('ix_frame_layer_idx')

    op.drop_table('frame')
    with op.batch_alter_table('attempt', schema=None) as batch_op:
        batch_op.drop_index('ix_attempt_running_host', postgresql_where=sa.text("state = 'RUNNING'"), sqlite_where=sa.text("state = 'RUNNING'"))

    op.drop_table('attempt')
    op.drop_table('admission')
