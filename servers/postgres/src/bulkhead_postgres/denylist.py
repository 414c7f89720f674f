"""The functions no statement may call, grouped by why, each with the reason a rejection gives.

The guard (`bulkhead_postgres.guard`) looks every called function name up here, wherever the call
sits in the tree. Names are lower-case and bare: the schema is ignored, so `PG_CATALOG.PG_SLEEP`
and `"pg_sleep"` are both `pg_sleep`.
"""

__all__ = ["DENIED_FUNCTIONS", "denied_reason"]


_FILES_READ = "it reads files on the database server"
_FILES_LIST = "it lists directories on the database server"
_FILES_WRITE = "it writes, renames or deletes files on the database server"
_CONFIG_FILES = "it reads configuration files on the database server"
_LO_FILES = "it copies files between the database server and large objects"
_LARGE_OBJECTS = "it reads or changes large objects, which this server does not expose"
_SIGNALS = "it signals or controls other server processes"
_SETTINGS = "it changes settings or state that outlive the query"
_SLEEP = "it holds a connection without doing work"
_ADVISORY = "it takes or releases advisory locks, which outlive the query"
_NOTIFY = "it sends notifications to other sessions"
_WAL = "it writes to the write-ahead log or controls backup and recovery"
_REPLICATION = "it creates, drops, advances or decodes replication slots or origins"
_SEQUENCE = "it changes a sequence"
_STATS = "it resets or overwrites the server's statistics"
_REMOTE = "it opens or manages connections to other databases"
_DYNAMIC = "it runs SQL given as a string, which this guard cannot check"
_HIDDEN = "it runs queries that this guard cannot see"
_XID = "it assigns a transaction ID, which is a write"
_SNAPSHOT = "it writes a snapshot file for other sessions to import"
_STORAGE = "it modifies indexes or table storage directly"
_CATALOG = "it changes the system catalog and exists only for extensions, initdb or pg_upgrade"
_BACKGROUND = "it starts background work or changes the server's buffer cache"

_FAMILIES: tuple[tuple[str, str], ...] = (
    (
        _FILES_READ,
        """
        pg_read_file pg_read_binary_file pg_read_file_old pg_stat_file pg_current_logfile
        pg_file_read pg_file_length xslt_process
        """,
    ),
    (
        _FILES_LIST,
        """
        pg_ls_dir pg_ls_logdir pg_ls_waldir pg_ls_tmpdir pg_ls_archive_statusdir
        pg_ls_logicalsnapdir pg_ls_logicalmapdir pg_ls_replslotdir pg_ls_summariesdir
        pg_logdir_ls
        """,
    ),
    (_FILES_WRITE, "pg_file_write pg_file_rename pg_file_unlink pg_file_sync"),
    (_CONFIG_FILES, "pg_hba_file_rules pg_ident_file_mappings pg_show_all_file_settings"),
    (_LO_FILES, "lo_import lo_export"),
    (
        _LARGE_OBJECTS,
        """
        lo_open lo_close lo_creat lo_create lo_unlink lo_put lo_get lo_from_bytea lo_truncate
        lo_truncate64 lo_lseek lo_lseek64 lo_tell lo_tell64 lo_read lo_write loread lowrite
        lo_manage
        """,
    ),
    (
        _SIGNALS,
        """
        pg_cancel_backend pg_terminate_backend pg_signal_backend pg_reload_conf
        pg_rotate_logfile pg_rotate_logfile_old pg_log_backend_memory_contexts pg_promote
        """,
    ),
    (_SETTINGS, "set_config setseed set_limit"),
    (_SLEEP, "pg_sleep pg_sleep_for pg_sleep_until"),
    (
        _ADVISORY,
        """
        pg_advisory_lock pg_advisory_lock_shared pg_advisory_unlock pg_advisory_unlock_shared
        pg_advisory_unlock_all pg_advisory_xact_lock pg_advisory_xact_lock_shared
        pg_try_advisory_lock pg_try_advisory_lock_shared pg_try_advisory_xact_lock
        pg_try_advisory_xact_lock_shared
        """,
    ),
    (_NOTIFY, "pg_notify"),
    (
        _WAL,
        """
        pg_switch_wal pg_switch_xlog pg_create_restore_point pg_logical_emit_message
        pg_log_standby_snapshot pg_backup_start pg_backup_stop pg_start_backup pg_stop_backup
        pg_wal_replay_pause pg_wal_replay_resume pg_xlog_replay_pause pg_xlog_replay_resume
        """,
    ),
    (
        _REPLICATION,
        """
        pg_create_physical_replication_slot pg_create_logical_replication_slot
        pg_drop_replication_slot pg_copy_physical_replication_slot
        pg_copy_logical_replication_slot pg_replication_slot_advance pg_sync_replication_slots
        pg_logical_slot_get_changes pg_logical_slot_peek_changes
        pg_logical_slot_get_binary_changes pg_logical_slot_peek_binary_changes
        pg_replication_origin_create pg_replication_origin_drop pg_replication_origin_oid
        pg_replication_origin_advance pg_replication_origin_progress
        pg_replication_origin_session_setup pg_replication_origin_session_reset
        pg_replication_origin_session_is_setup pg_replication_origin_session_progress
        pg_replication_origin_xact_setup pg_replication_origin_xact_reset
        """,
    ),
    (_SEQUENCE, "nextval setval"),
    (
        _STATS,
        """
        pg_stat_reset pg_stat_reset_shared pg_stat_reset_single_table_counters
        pg_stat_reset_single_function_counters pg_stat_reset_slru pg_stat_reset_replication_slot
        pg_stat_reset_subscription_stats pg_stat_reset_backend_stats pg_stat_statements_reset
        pg_clear_relation_stats pg_clear_attribute_stats pg_restore_relation_stats
        pg_restore_attribute_stats pg_set_relation_stats pg_set_attribute_stats
        """,
    ),
    (
        _REMOTE,
        """
        dblink dblink_connect dblink_connect_u dblink_disconnect dblink_exec dblink_open
        dblink_fetch dblink_close dblink_send_query dblink_get_result dblink_is_busy
        dblink_cancel_query dblink_error_message dblink_get_connections dblink_get_notify
        dblink_current_query dblink_get_pkey dblink_build_sql_insert dblink_build_sql_update
        dblink_build_sql_delete postgres_fdw_disconnect postgres_fdw_disconnect_all
        """,
    ),
    (
        _DYNAMIC,
        """
        query_to_xml query_to_xmlschema query_to_xml_and_xmlschema ts_stat ts_rewrite crosstab
        crosstab2 crosstab3 crosstab4 crosstab_hash pg_background_launch
        """,
    ),
    (
        _HIDDEN,
        """
        cursor_to_xml cursor_to_xmlschema table_to_xml table_to_xmlschema
        table_to_xml_and_xmlschema schema_to_xml schema_to_xmlschema schema_to_xml_and_xmlschema
        database_to_xml database_to_xmlschema database_to_xml_and_xmlschema connectby
        pg_background_result pg_background_detach
        """,
    ),
    (_XID, "txid_current pg_current_xact_id"),
    (_SNAPSHOT, "pg_export_snapshot"),
    (
        _STORAGE,
        """
        brin_summarize_range brin_summarize_new_values brin_desummarize_range
        gin_clean_pending_list pg_truncate_visibility_map heap_force_freeze heap_force_kill
        """,
    ),
    (
        _CATALOG,
        """
        pg_import_system_collations pg_extension_config_dump pg_stop_making_pinned_objects
        pg_nextoid binary_upgrade_create_empty_extension binary_upgrade_set_missing_value
        binary_upgrade_set_record_init_privs
        """,
    ),
    (_BACKGROUND, "pg_prewarm autoprewarm_start_worker autoprewarm_dump_now"),
)
"""Each reason, with the functions it applies to (names separated by white space)."""

_DENIED_REASONS: dict[str, str] = {name: reason for reason, names in _FAMILIES for name in names.split()}

DENIED_FUNCTIONS: frozenset[str] = frozenset(_DENIED_REASONS)
"""Functions no statement may call, as lower-case bare names (the schema is ignored)."""

# Families whose every member (including ones added by later PostgreSQL releases) is denied. Each
# prefix belongs to PostgreSQL or a contrib module, so it does not catch a user's own functions.
_DENIED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("pg_advisory_", _ADVISORY),
    ("pg_try_advisory_", _ADVISORY),
    ("pg_ls_", _FILES_LIST),
    ("pg_file_", _FILES_WRITE),
    ("pg_stat_reset", _STATS),
    ("pg_replication_origin_", _REPLICATION),
    ("pg_logical_slot_", _REPLICATION),
    ("dblink_", _REMOTE),
    ("binary_upgrade_", _CATALOG),
)

_DENIED_PREFIX_STRINGS = tuple(prefix for prefix, _ in _DENIED_PREFIXES)


def denied_reason(name: str) -> str | None:
    """Why a call of the lower-case bare function `name` is refused, or None if it is allowed."""
    reason = _DENIED_REASONS.get(name)
    if reason is None and name.startswith(_DENIED_PREFIX_STRINGS):
        reason = next(why for prefix, why in _DENIED_PREFIXES if name.startswith(prefix))
    return reason
